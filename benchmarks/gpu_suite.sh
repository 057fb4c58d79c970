#!/usr/bin/env bash
# benchmarks/gpu_suite.py on a bare GPU machine without internet: install carried wheels, then run.
#
#   benchmarks/gpu_suite.sh [--wheels DIR] [gpu_suite.py options, e.g. --out "$OUT"]
#
# The wheels are installed with `pip install --no-index --no-deps` into /tmp/vidgrid-site, which goes
# on PYTHONPATH ahead of the machine's own packages (a carried torch would shadow the machine's). The
# checkout's src/ and root come first, so vidgrid needs no install. The shell is needed only because
# the wheels must be in place before Python imports torch.
#
# What to carry (download here, where pip reaches PyPI; the device machine has Python 3.12 and its own
# CUDA torch, numpy, PyYAML, matplotlib, tensorboard, tqdm, tabulate, networkx, pillow):
#   echo /.whl/ >> .git/info/exclude; mkdir -p .whl /tmp/ptv-src
#   P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64"
#   python3 -m pip download $P -d .whl av==18.1.0                                   # vidgrid's decoder (34 MiB)
#   python3 -m pip download --no-deps -d .whl yacs==0.1.8 termcolor==3.3.0 parameterized==0.9.0 portalocker==4.4.2
#   python3 -m pip download --no-deps --no-binary=:all: -d /tmp/ptv-src pytorchvideo==0.1.5 \
#       fvcore==0.1.5.post20221221 iopath==0.1.10
#   python3 -m pip wheel --no-deps --no-build-isolation -w .whl /tmp/ptv-src/*.tar.gz  # pure-Python wheels
# About 36 MiB in all, under the 64 MiB that travels with the working tree. A CUDA build of the
# pinned torch cannot travel that way (torch-2.13.0-cp312-cp312-manylinux_2_28_x86_64.whl alone is
# 502 MiB, before its nvidia-* wheels): the run uses the machine's torch and records its version.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--wheels" ]]; then
    [[ -d "${2:-}" ]] || { echo "error: --wheels ${2:-}: expected a folder of .whl files" >&2; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/vidgrid-site "$2"/*.whl
    export PYTHONPATH=/tmp/vidgrid-site${PYTHONPATH:+:$PYTHONPATH}
    shift 2
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
exec python3 -m benchmarks.gpu_suite "$@"
