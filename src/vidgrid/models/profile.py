"""``vidgrid profile``: the columns of the video backbone benchmark table of the practitioner's notes.

Per model: parameters (all, and backbone only = everything outside the ``head`` submodule), GMACs
of one clip (``torch.utils.flop_counter`` counts 2 FLOPs per multiply-add; we halve it), peak memory
of a training step, and training / inference clips per second at the requested batch.

How each figure is obtained:

- Parameters and GMACs come from a copy of the model on the ``meta`` device (no memory, no compute),
  in eval mode, batch 1; the count includes convolutions, linear layers and attention matmuls, not
  softmax or normalisation (the convention of ``shared/reference.md``).
- Memory and speed are measured in a fresh child process per model, so no figure depends on what
  was profiled before it. A training step is forward, cross-entropy, backward and an SGD (momentum)
  step. Memory is, on CUDA, ``torch.cuda.max_memory_allocated`` over model construction and one
  training step (weights, gradients, optimizer state, activations; what the practitioner's notes table reads
  from nvidia-smi, less the CUDA context and cache); on CPU, the growth of the process's peak
  resident set size (``ru_maxrss``) over the same span, measured from the child's baseline after
  imports. Speed: that first step is the warm-up, then ``TIMED_STEPS`` timed steps (short on purpose:
  full-size models are slow on a few CPU cores).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from vidgrid.errors import ConfigError, VidgridError
from vidgrid.models.registry import create_model, list_models

Shape = tuple[int, int, int, int]
TIMED_STEPS = 3
"""Timed steps per speed figure, after one warm-up step."""


@dataclass(frozen=True)
class Profile:
    """One row of the table (the JSON object of ``--json``)."""

    model: str
    input: list[int] | list[list[int]]
    """[C, T, H, W] of the clip, or one such list per pathway (SlowFast)."""
    params: int
    params_backbone: int
    gmacs: float
    """Multiply-adds of one clip, in billions."""
    batch: int
    device: str
    memory_mb: float
    """Peak memory of a training step in MiB (see the module docstring for what it is per device)."""
    train_clips_per_s: float
    infer_clips_per_s: float


def clip_shape(name: str, model: nn.Module, frames: int | None, crop: int | None) -> Shape:
    """The (C, T, H, W) to profile at: the model's ``default_input`` with ``frames``/``crop`` replacing
    T and H = W; refused (one line) when the model cannot take it."""
    c, t, h, w = model.default_input
    shape = (c, frames or t, crop or h, crop or w)
    if shape[1] < model.min_frames or shape[1] % model.frames_multiple:
        raise ConfigError(
            f"--frames {shape[1]}: {name} needs at least {model.min_frames} frames, "
            f"a multiple of {model.frames_multiple}"
        )
    if shape[2] % model.crop_multiple:
        raise ConfigError(f"--crop {shape[2]}: {name} needs a multiple of {model.crop_multiple}")
    return shape


def input_field(model: nn.Module, shape: Shape) -> list[int] | list[list[int]]:
    """``input`` as the table shows it: [C, T, H, W], or per pathway for multi-pathway models."""
    pathways = [list(p) for p in model.pathway_shapes(shape)]
    return pathways if len(pathways) > 1 else pathways[0]


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside the ``head`` submodule)."""
    total = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    return total, total - head


def count_gmacs(model: nn.Module, shape: Shape) -> float:
    """Multiply-adds (billions) of one eval-mode forward pass of a (1, *shape) clip.

    ``model`` may live on the meta device (nothing is computed); elsewhere attention runs in the math
    backend so that its matmuls are counted.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.empty(1, *shape, device=device)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            if device.type == "meta":
                model(x)
            else:
                with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                    model(x.normal_())
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


def _rss_mb() -> float | None:
    """Current resident set size in MiB (Linux ``/proc``), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return None
    return pages * resource.getpagesize() / 2**20


def _max_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One training step (forward, cross-entropy, backward, optimizer step) on a fixed batch."""

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def inference_step(model: nn.Module, x: Tensor) -> Callable[[], None]:
    """One inference forward pass on a fixed batch (no autograd)."""

    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def clips_per_s(step: Callable[[], None], *, batch: int, steps: int, sync: Callable[[], None]) -> float:
    """Clips per second of ``steps`` calls of an already warmed-up ``step`` over ``batch`` clips."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def measure(name: str, shape: Shape, batch: int, device: str) -> tuple[float, float, float]:
    """(peak training-step memory MiB, training clips/s, inference clips/s) of model ``name``.

    Meant to run in a fresh process (see :func:`measure_in_child`) so the memory baseline is clean.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    base = _rss_mb() or _max_rss_mb()

    model = create_model(name).to(dev).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    x = torch.randn(batch, *shape, device=dev)
    y = torch.randint(0, 400, (batch,), device=dev)
    train = training_step(model, optimizer, x, y)
    train()  # warm-up, and the memory figure
    sync()
    memory = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else _max_rss_mb() - base
    train_speed = clips_per_s(train, batch=batch, steps=TIMED_STEPS, sync=sync)
    optimizer.zero_grad(set_to_none=True)

    infer = inference_step(model.eval(), x)
    infer()  # warm-up
    sync()
    return memory, train_speed, clips_per_s(infer, batch=batch, steps=TIMED_STEPS, sync=sync)


def measure_in_child(name: str, shape: Shape, batch: int, device: str) -> tuple[float, float, float]:
    """:func:`measure` in a freshly spawned process (a clean memory baseline and CUDA context)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        try:
            return pool.submit(measure, name, shape, batch, device).result()
        except BrokenProcessPool as e:
            raise VidgridError(f"profile {name}: the measuring process died (out of memory at batch {batch}?)") from e


def profile_model(name: str, *, frames: int | None, crop: int | None, batch: int, device: str) -> Profile:
    """All figures of one registered model (see the module docstring)."""
    with torch.device("meta"):
        model = create_model(name)
    shape = clip_shape(name, model, frames, crop)
    params, backbone = count_params(model)
    gmacs = count_gmacs(model, shape)
    memory, train_speed, infer_speed = measure_in_child(name, shape, batch, device)
    return Profile(
        model=name, input=input_field(model, shape), params=params, params_backbone=backbone, gmacs=round(gmacs, 3),
        batch=batch, device=device, memory_mb=round(memory, 1), train_clips_per_s=round(train_speed, 3),
        infer_clips_per_s=round(infer_speed, 3),
    )


def format_table(rows: list[Profile]) -> str:
    """The practitioner's notes' benchmark columns as an aligned text table."""
    header = (
        "model", "input (C,T,H,W)", "params (M)", "backbone (M)", "GMACs", "memory (MiB)", "train clips/s",
        "infer clips/s",
    )
    body = [
        (
            r.model, _shape_text(r.input), f"{r.params / 1e6:.2f}", f"{r.params_backbone / 1e6:.2f}", f"{r.gmacs:.2f}",
            f"{r.memory_mb:.0f}", f"{r.train_clips_per_s:.2f}", f"{r.infer_clips_per_s:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: tuple[str, ...]) -> str:  # text columns left-aligned, numbers right-aligned
        return "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths)))

    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, body)])


def _shape_text(shape: list[int] | list[list[int]]) -> str:
    if shape and isinstance(shape[0], list):
        return " + ".join(_shape_text(s) for s in shape)  # type: ignore[arg-type]
    return ",".join(str(v) for v in shape)


def profile_command(
    model: str | None, *, all_models: bool, frames: int | None, crop: int | None, batch: int, device: str,
    as_json: bool,
) -> int:
    """``vidgrid profile``: print the table (or JSON lines) for one model or, with ``--all``, every one."""
    if all_models == (model is not None):
        raise VidgridError("profile: give either a model name or --all (not both)")
    if batch < 1:
        raise ConfigError(f"--batch {batch}: expected an integer >= 1")
    for flag, value in (("--frames", frames), ("--crop", crop)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: expected an integer >= 1")
    if device == "cuda" and not torch.cuda.is_available():
        raise VidgridError("--device cuda: no CUDA device is available")
    names = list_models() if all_models else [model]
    if not as_json:
        mem = "CUDA max_memory_allocated" if device == "cuda" else "peak RSS growth"
        print(f"# device {device}, batch {batch}; GMACs per clip (batch 1); memory = {mem} of a training step")
    rows = []
    for name in names:
        if len(names) > 1 and not as_json:
            print(f"profiling {name} ...", file=sys.stderr, flush=True)
        row = profile_model(name, frames=frames, crop=crop, batch=batch, device=device)  # type: ignore[arg-type]
        rows.append(row)
        if as_json:
            print(json.dumps(asdict(row)), flush=True)
    if not as_json:
        print(format_table(rows))
    return 0
