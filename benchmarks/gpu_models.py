"""The models of ``benchmarks/gpu_suite.py``: vidgrid's registered builders and PyTorchVideo's builders
of the same architectures, one training-step measurement per (model, variant), and the bf16 checks.

A *subject* is a model builder plus the input it takes: vidgrid models take one (B, C, T, H, W) clip
(SlowFast subsamples its slow pathway inside); PyTorchVideo's SlowFast takes ``[slow, fast]`` with
the slow pathway every α-th frame of the fast one (α = 4).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import time
import types
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_models import VARIANTS, cudnn_benchmark
from benchmarks.gpu_results import mfu
from vidgrid.models import create_model
from vidgrid.models.profile import training_step

Shape = tuple[int, int, int, int]
Inputs = Any
"""A tensor (B, C, T, H, W), or a list of them (one per pathway)."""

PTV_X3D = {  # pytorchvideo/models/hub/x3d.py: (input_clip_length, input_crop_size, depth_factor)
    "x3d_xs": (4, 160, 2.2), "x3d_s": (13, 160, 2.2), "x3d_m": (16, 224, 2.2), "x3d_l": (16, 312, 5.0),
}
SLOWFAST_ALPHA = 4


@dataclass(frozen=True)
class Subject:
    """One model to measure: its name, where its builder comes from, and its clip shape."""

    model: str
    source: str
    """``vidgrid`` or ``pytorchvideo``."""
    shape: Shape
    """(C, T, H, W) of the clip (the fast pathway's for SlowFast)."""
    build: Callable[[], nn.Module]
    pathways: bool = False
    """The model takes ``[slow, fast]`` instead of one clip."""

    def inputs(self, batch: int, device: torch.device, channels_last: bool) -> Inputs:
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        x = torch.randn(batch, *self.shape, device=device).contiguous(memory_format=fmt)
        if not self.pathways:
            return x
        return [x[:, :, ::SLOWFAST_ALPHA].contiguous(memory_format=fmt), x]


def small_shape(model: nn.Module, frames: int, crop: int) -> Shape:
    """The smallest valid clip of at least ``frames`` × ``crop``² for a vidgrid model (dry runs)."""
    step = model.frames_multiple
    t = max(model.min_frames, -(-frames // step) * step)
    s = -(-crop // model.crop_multiple) * model.crop_multiple
    return (3, t, s, s)


def vidgrid_subject(name: str, tiny: tuple[int, int] | None) -> Subject:
    """A registered vidgrid model at its default input, or at the tiny (frames, crop) of a dry run."""
    with torch.device("meta"):
        meta = create_model(name)
    shape = meta.default_input if tiny is None else small_shape(meta, *tiny)
    return Subject(name, "vidgrid", tuple(shape), lambda: create_model(name))


def stub_torchvision() -> None:
    """PyTorchVideo's ``models.head`` imports ``torchvision.ops.RoIAlign`` (for detection heads only).
    Where torchvision is absent (vidgrid never depends on it), a stand-in module lets the classification
    builders import; using RoIAlign then raises."""
    try:
        importlib.import_module("torchvision")
        return
    except ImportError:
        pass

    class RoIAlign(nn.Module):
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise ImportError("torchvision is not installed: RoIAlign is a stand-in")

    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.RoIAlign = RoIAlign  # type: ignore[attr-defined]
    tv.ops = ops  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": tv, "torchvision.ops": ops})


def pytorchvideo_subjects(names: list[str], tiny: tuple[int, int] | None) -> tuple[list[Subject], str | None]:
    """PyTorchVideo's builders of the models in ``names`` that it has (X3D, SlowFast R50; it has no
    MViTv2), and why none could be built if it does not import."""
    stub_torchvision()
    try:
        from pytorchvideo.models.slowfast import create_slowfast
        from pytorchvideo.models.x3d import create_x3d
    except ImportError as e:
        return [], f"pytorchvideo does not import: {e}"
    subjects = []
    for name in names:
        if name in PTV_X3D:
            frames, crop, depth = PTV_X3D[name]
            if tiny is not None:
                frames, crop = tiny
            build = lambda t=frames, s=crop, d=depth: create_x3d(input_clip_length=t, input_crop_size=s, depth_factor=d)
            subjects.append(Subject(name, "pytorchvideo", (3, frames, crop, crop), build))
        elif name == "slowfast_r50_8x8":
            frames, crop = (32, 224) if tiny is None else (max(tiny[0], 2 * SLOWFAST_ALPHA), tiny[1])
            pool = ((frames // SLOWFAST_ALPHA, crop // 32, crop // 32), (frames, crop // 32, crop // 32))
            build = lambda p=pool: FreshPathways(create_slowfast(
                model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1), head_pool_kernel_sizes=p))
            subjects.append(Subject(name, "pytorchvideo", (3, frames, crop, crop), build, pathways=True))
    return subjects, None


class FreshPathways(nn.Module):
    """Calls ``net`` on a copy of its ``[slow, fast]`` list: PyTorchVideo's ``MultiPathWayWithFuse``
    (``inplace=True`` by default) overwrites the list it is given with its outputs, which breaks a
    benchmark that feeds the same batch to every step."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.net(list(x))


def forward_gmacs(subject: Subject) -> float:
    """Multiply-adds (billions) of one clip's forward pass in eval mode, counted on the meta device by
    ``torch.utils.flop_counter`` (convolutions, linear layers, attention matmuls)."""
    with torch.device("meta"):
        model = subject.build().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(subject.inputs(1, torch.device("meta"), channels_last=False))
    return counter.get_total_flops() / 2 / 1e9


def synchronizer(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def timed_clips_per_s(step: Callable[[], None], *, batch: int, min_steps: int, max_steps: int, seconds: float,
                      sync: Callable[[], None]) -> tuple[float, int]:
    """(clips/s, steps timed) of a warmed-up ``step``: at least ``min_steps``, then until ``seconds`` have
    passed or ``max_steps`` were taken."""
    start = time.perf_counter()
    steps = 0
    while steps < min_steps or (steps < max_steps and time.perf_counter() - start < seconds):
        step()
        sync()
        steps += 1
    return batch * steps / (time.perf_counter() - start), steps


def measure_variant(subject: Subject, variant: str, *, batch: int, device: torch.device, gmacs: float,
                    min_steps: int, max_steps: int, seconds: float, compile_backend: str) -> dict[str, Any]:
    """One row of the model table: training clips/s of ``subject`` in ``variant`` after one warm-up
    step (whose time, ``first_step_s``, holds the compilation in the compiled variant), the peak
    memory over model, optimizer and those steps, and the MFU."""
    bf16, channels_last, compiled, benchmark = VARIANTS[variant]
    sync = synchronizer(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    model = subject.build().to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    net = torch.compile(model, backend=compile_backend) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
    x = subject.inputs(batch, device, channels_last)
    y = torch.randint(0, 400, (batch,), device=device)
    try:
        with autocast(device, bf16), cudnn_benchmark(benchmark):
            step = training_step(net, optimizer, x, y)
            started = time.perf_counter()
            step()
            sync()
            first = time.perf_counter() - started
            speed, steps = timed_clips_per_s(step, batch=batch, min_steps=min_steps, max_steps=max_steps,
                                             seconds=seconds, sync=sync)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    finally:
        del model, net, optimizer, x, y
        release(device)
    return {
        "model": subject.model, "source": subject.source, "input": ",".join(map(str, subject.shape)), "batch": batch,
        "variant": variant, "train_clips_per_s": speed, "timed_steps": steps, "first_step_s": first,
        "peak_memory_gib": peak, "forward_gmacs_per_clip": gmacs, "mfu_pct": 100 * mfu(speed, gmacs * 1e9),
    }


def release(device: torch.device) -> None:
    """Free what a measurement left behind (and forget compiled graphs) before the next one."""
    gc.collect()
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_fitting(subject: Subject, variant: str, *, batch: int, **kwargs: Any) -> dict[str, Any]:
    """:func:`measure_variant` at ``batch``, halving it on CUDA out-of-memory (down to 1)."""
    while True:
        try:
            return measure_variant(subject, variant, batch=batch, **kwargs)
        except torch.cuda.OutOfMemoryError:
            release(kwargs["device"])
            if batch == 1:
                raise
            batch //= 2
            print(f"  {subject.model} {variant}: out of memory, batch {batch}", flush=True)


def check_bf16_training(name: str, *, tiny: tuple[int, int] | None, batch: int, steps: int, device: torch.device,
                        tolerance: float) -> dict[str, Any]:
    """The CUDA training path checked before any speed is measured: ``steps`` SGD steps of model
    ``name`` in bf16 autocast with channels_last_3d on one fixed batch (the loss must stay finite and
    fall: the step fits the batch), then the trained model's eval-mode logits in bf16 against fp32
    (relative L2 error at most ``tolerance``)."""
    subject = vidgrid_subject(name, tiny)
    torch.manual_seed(0)
    model = subject.build().to(device).to(memory_format=torch.channels_last_3d).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = subject.inputs(batch, device, channels_last=True)
    y = torch.randint(0, 400, (batch,), device=device)
    losses = []
    for _ in range(steps):
        with autocast(device, True):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.inference_mode():
        reference = model(x).float()
        with autocast(device, True):
            raw = model(x)
        low = raw.float()
    rel_err = float(torch.linalg.vector_norm(low - reference) / torch.linalg.vector_norm(reference))
    finite = all(torch.isfinite(torch.tensor(losses)).tolist())
    falls = finite and losses[-1] < losses[0]
    del model, optimizer, x, y
    release(device)
    return {
        "model": name, "input": ",".join(map(str, subject.shape)), "batch": batch, "losses": losses, "finite": finite,
        "falls": falls, "eval_rel_err": rel_err, "tolerance": tolerance, "autocast_logits_dtype": str(raw.dtype).removeprefix("torch."),
        "ok": finite and falls and rel_err <= tolerance,
    }
