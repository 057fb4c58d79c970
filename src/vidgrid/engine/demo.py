"""``vidgrid demo``: the README's first command.

Writes the synthetic action dataset (:mod:`vidgrid.data.synthetic`) into ``OUT/data``, trains the
small X3D of ``configs/demo.yaml`` on it with multigrid into ``OUT/run`` (on a GPU channels-first,
with more loader workers: :func:`gpu_overrides`), evaluates it on the validation videos and prints
the top-1 accuracy and where the plots are. Running it again reuses the dataset and resumes (or just
reports) the run.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from vidgrid.config import load_config
from vidgrid.data.synthetic import write_synthetic_dataset
from vidgrid.engine.distributed import available_cores
from vidgrid.engine.stopping import exit_status
from vidgrid.engine.trainer import train

TRAIN_PER_CLASS = 100
"""Training videos per class: multigrid's large coarse batches need enough videos per epoch to leave
the run a few hundred iterations."""
VAL_PER_CLASS = 20
GPU_LAYOUT = ("model.channels_last=false",)
"""The demo recipe's memory layout is oneDNN's choice for 2 CPU cores; on a GPU X3D's depthwise
convolutions ran 2.5-4x slower in channels_last_3d (``benchmarks/results``; 20 demo epochs took 13 ms
an iteration in fp32 channels-first on an H100, 59 ms in bf16 channels-last on an H200)."""
GPU_MAX_WORKERS = 8
"""Each loader worker keeps its own decoded-video cache (about 0.4 GB of the demo's videos)."""


def gpu_overrides(cores: int) -> list[str]:
    """What the demo changes in its recipe on a GPU: :data:`GPU_LAYOUT`, and a loader worker for every
    core but the trainer's, up to :data:`GPU_MAX_WORKERS`, instead of the recipe's one (multigrid's
    coarse steps take 32 clips in a few milliseconds there)."""
    return [*GPU_LAYOUT, f"data.workers={max(1, min(GPU_MAX_WORKERS, cores - 1))}"]


def run_demo(out: Path) -> int:
    """Make the data (unless ``OUT/data`` has it), train, evaluate, report; returns the exit code."""
    started = time.perf_counter()
    data = out / "data"
    if (data / "meta.json").is_file():
        print(f"using the synthetic dataset in {data}")
    else:
        print(f"writing the synthetic dataset to {data} ...", flush=True)
        write_synthetic_dataset(data, train_per_class=TRAIN_PER_CLASS, val_per_class=VAL_PER_CLASS)
    overrides = gpu_overrides(available_cores()) if torch.cuda.is_available() else []
    if overrides:
        print(f"on a GPU: {' '.join(overrides)} (the recipe's are for 2 CPU cores)")
    cfg = load_config("demo", overrides)
    # the recipe's list paths are relative to the demo folder
    cfg.data.train_list = str(out / cfg.data.train_list)
    cfg.data.val_list = str(out / cfg.data.val_list)
    summary = train(cfg, out / "run", resume="auto")
    if summary.get("preempted"):
        print(f"stopped early; run 'vidgrid demo --out {out}' again to continue")
        return exit_status(summary)
    run = out / "run"
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s: top-1 {100 * summary['top1']:.1f}% on "
          f"{summary.get('videos', '?')} validation videos")
    print(f"plots: {', '.join(str(run / name) for name in ('loss.png', 'accuracy.png', 'lr.png', 'confusion.png'))}")
    print(f"summary: {run / 'summary.json'}; per-video predictions: {run / 'predictions.jsonl'}")
    print(f"try: vidgrid predict {data / 'val' / 'slide_up' / 'slide_up_000.mp4'} --checkpoint {summary['checkpoint']}")
    return 0
