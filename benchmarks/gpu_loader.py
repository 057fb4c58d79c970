"""The input pipeline's measurements of ``benchmarks/gpu_suite.py``: ``data prepare``d fixtures, the
DataLoader's decoded clips/s, and normalise/crop/flip on the device."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from benchmarks.bench_decode import write_fixture
from benchmarks.gpu_models import synchronizer, timed_clips_per_s
from vidgrid.data.prepare import prepare_command
from vidgrid.engine.device import normalize_clip


def prepared_videos(folder: Path, count: int) -> list[Path]:
    """``count`` 10 s 340×256 H.264 fixtures (``bench_decode``'s), through ``data prepare`` (short side 256)."""
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    paths = [src / f"v{k}.mp4" for k in range(count)]
    for k, path in enumerate(paths):
        if not path.is_file():
            write_fixture(path, 340, 256, None, seed=k)
    (src / "list.txt").write_text("".join(f"{p.name} 0\n" for p in paths))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        prepare_command(src / "list.txt", folder / "prepared", root=None, short_side=256, keyint=16, workers=count)
    return [folder / "prepared" / p.name for p in paths]


def loader_speed(loader: DataLoader, batch: int, seconds: float) -> float:
    """Clips/s of ``loader`` after its first batch (worker start-up), for about ``seconds``."""
    batches = iter(loader)
    next(batches)
    started, clips = time.perf_counter(), 0
    try:
        while time.perf_counter() - started < seconds:
            clips += len(next(batches)[0])
    finally:
        batches._shutdown_workers()  # type: ignore[attr-defined]
    return clips / (time.perf_counter() - started)


def gpu_augment_speed(frames: int, crop: int, *, batch: int, device: torch.device, seconds: float) -> dict[str, Any]:
    """Clips/s of normalise (``normalize_clip``), random crop and flip of uint8 clips on the device."""
    side = crop * 8 // 7  # a 256² clip cropped to 224²
    clips = torch.randint(0, 256, (batch, 3, frames, side, side), dtype=torch.uint8, device=device)

    def step() -> None:
        x = normalize_clip(clips, (0.45,) * 3, (0.225,) * 3)[..., :crop, side - crop:]
        torch.flip(x, dims=(-1,))

    step()
    speed, _ = timed_clips_per_s(step, batch=batch, min_steps=2, max_steps=10_000, seconds=seconds, sync=synchronizer(device))
    return {"what": f"on-device normalise + crop + flip, uint8 {frames}x{side}² -> {crop}²", "clips_per_s": speed}
