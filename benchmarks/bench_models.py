"""Training and inference clips/s of every registered model.

On CPU each model runs at a small but representative input — half its default frames and half its
default crop (1/8 of the default compute; MViTv2-B: 16×112², X3D-S: 6×80²) — in fp32, eager and with
``channels_last_3d`` memory format for the convolutional families. On CUDA each model runs at its
default input with the variants: fp32 eager, bf16 autocast, bf16 + channels_last_3d, and bf16 +
channels_last_3d + ``torch.compile``. A training step is forward, cross-entropy, backward and an SGD
step; every figure is one warm-up step then ``--steps`` timed steps. CPU figures use one thread by
default (``--threads``), so they compare models rather than measure the machine.

    python benchmarks/bench_models.py                      # every model, the device's variants
    python benchmarks/bench_models.py --models x3d_s slowfast_r50_8x8 --variants eager cl3d
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
from typing import Callable, Iterator, NamedTuple

import torch
from torch import nn

from vidgrid.models import create_model, list_models
from vidgrid.models.profile import clips_per_s, inference_step, training_step

Shape = tuple[int, int, int, int]
class Variant(NamedTuple):
    """How a model is run: autocast to bf16, channels_last_3d, torch.compile, cudnn.benchmark."""

    bf16: bool = False
    channels_last: bool = False
    compiled: bool = False
    cudnn_benchmark: bool = False


VARIANTS = {
    "eager": Variant(),
    "cl3d": Variant(channels_last=True),
    "compile": Variant(compiled=True),
    "cudnn-bench": Variant(cudnn_benchmark=True),
    "bf16": Variant(bf16=True),
    "bf16+cl3d": Variant(bf16=True, channels_last=True),
    "bf16+cl3d+cudnn-bench": Variant(bf16=True, channels_last=True, cudnn_benchmark=True),
    "bf16+cl3d+compile": Variant(bf16=True, channels_last=True, compiled=True),
}
"""cudnn-bench: cuDNN times its algorithms for each new input shape and keeps the fastest, instead of
choosing by heuristics (on an H100 it changed no figure by 1%: X3D's depthwise convolutions stayed
2.5-4x slower in channels_last_3d; ``benchmarks/results``)."""
DEFAULT_VARIANTS = {
    "cpu": ["eager", "cl3d"],
    "cuda": ["eager", "cudnn-bench", "bf16", "bf16+cl3d", "bf16+cl3d+cudnn-bench", "bf16+cl3d+compile"],
}


def bench_shape(model: nn.Module, device: str) -> Shape:
    """The model's default input on CUDA; on CPU half its frames (a valid count) and half its crop."""
    c, t, h, w = model.default_input
    if device == "cuda":
        return (c, t, h, w)
    frames = max(model.min_frames, t // 2 // model.frames_multiple * model.frames_multiple)
    crop = h // 2 // model.crop_multiple * model.crop_multiple
    return (c, frames, crop, crop)


def is_convolutional(model: nn.Module) -> bool:
    """Whether the model is built of 3-D convolutions rather than linear layers (a transformer's only
    convolutions are its patch embedding and pooling, where channels_last_3d changes little)."""
    kinds = [type(m) for m in model.modules()]
    return kinds.count(nn.Conv3d) > kinds.count(nn.Linear)


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` = ``on`` inside the block (no effect off CUDA)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def run_variant(name: str, variant: str, device: str, batch: int, steps: int) -> tuple[Shape, float, float]:
    """(input shape, training clips/s, inference clips/s) of one model in one variant."""
    bf16, channels_last, compiled, benchmark = VARIANTS[variant]
    dev = torch.device(device)
    model = create_model(name).to(dev)
    shape = bench_shape(model, device)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, *shape, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 400, (batch,), device=dev)
    net: nn.Module = torch.compile(model) if compiled else model  # type: ignore[assignment]
    sync: Callable[[], None] = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    with autocast, cudnn_benchmark(benchmark):
        train = training_step(net.train(), optimizer, x, y)
        train()
        sync()
        train_speed = clips_per_s(train, batch=batch, steps=steps, sync=sync)
        infer = inference_step(net.eval(), x)
        infer()
        sync()
        infer_speed = clips_per_s(infer, batch=batch, steps=steps, sync=sync)
    del model, net, optimizer, x, y
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return shape, train_speed, infer_speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="*", default=None, help="registered names (default: all)")
    parser.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), default=None)
    parser.add_argument("--batch", type=int, default=None, help="clips per step (default: 1 on CPU, 8 on CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 2 on CPU, 10 on CUDA)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads (default: %(default)s; more threads on a busy shared machine oversubscribe the cores and "
        "the figures become noise: 2 threads took 21 min instead of 2.5 under load 8)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = args.device == "cpu"
    batch = args.batch or (1 if cpu else 8)
    steps = args.steps or (2 if cpu else 10)
    variants = args.variants or DEFAULT_VARIANTS[args.device]
    names = args.models or list_models()

    where = f"{torch.get_num_threads()} threads" if cpu else torch.cuda.get_device_name()
    print(f"# device {args.device} ({where})")
    print(f"# torch {torch.__version__}, batch {batch}, 1 warm-up + {steps} timed steps per figure")
    header = f"{'model':<20} {'input (C,T,H,W)':<16} {'variant':<18} {'train clips/s':>13} {'infer clips/s':>13}"
    header += f" {'wall s':>7}"
    print(header)
    print("-" * len(header))
    start_all = time.perf_counter()
    for name in names:
        with torch.device("meta"):
            conv = is_convolutional(create_model(name))
        for variant in variants:
            if VARIANTS[variant].channels_last and not conv:
                continue  # channels_last_3d only changes the patch embedding of a transformer
            start = time.perf_counter()
            shape, train_speed, infer_speed = run_variant(name, variant, args.device, batch, steps)
            print(
                f"{name:<20} {','.join(map(str, shape)):<16} {variant:<18} {train_speed:>13.2f} {infer_speed:>13.2f}"
                f" {time.perf_counter() - start:>7.1f}",
                flush=True,
            )
    print(f"# total {time.perf_counter() - start_all:.0f} s")


if __name__ == "__main__":
    main()
