"""Clip decoding speed: our seek-and-decode vs decoding whole videos, before and
after ``vidgrid data prepare``, and the full training DataLoader.

Fixtures: 10 s, 30 fps H.264 videos at 340×256 and 1280×720, each with x264's default key-frame
interval (250) and with a key frame every 2 s, encoded with frame threads only. Single-video figures
are clips/s on one core (``torch.set_num_threads(1)``, single-threaded decoding), computed from the
process's CPU time so that they hold on a shared machine (wall-clock figures in brackets). The
DataLoader figures (2 worker processes) are wall clock; the load average is printed with them.
Targets: clip sampling >= 2.5× decode-everything on the 2 s key-frame video; ``data prepare`` output
>= 2× faster to sample than its default-key-frame source.

Run: ``python benchmarks/bench_decode.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.decode import decode_frames, probe_video
from vidgrid.data.encode import VideoWriter
from vidgrid.data.prepare import prepare_command
from vidgrid.types import ClipShape

FPS, SECONDS = 30, 10
SIZES = {"340x256": (340, 256), "1280x720": (1280, 720)}
KEYINTS = {"default keyint": None, "2 s keyint": 2 * FPS}
CLIPS = {"32x2": (32, 2), "8x8": (8, 8)}


def write_fixture(path: Path, width: int, height: int, keyint: int | None, seed: int = 0) -> None:
    """A natural-ish video: a blocky random texture panning under three moving bright squares."""
    rng = np.random.default_rng(seed)
    frames = FPS * SECONDS
    coarse = rng.integers(0, 255, (height // 16 + 4, (width + 2 * frames) // 16 + 4, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)  # blocky low-frequency texture
    texture = ((texture.astype(np.uint16) + np.roll(texture, 8, axis=1) + np.roll(texture, 8, axis=0)) // 3).astype(np.uint8)
    side = height // 5
    with VideoWriter(path, width, height, FPS, keyint=keyint) as writer:
        for t in range(frames):
            image = texture[:height, 2 * t : 2 * t + width].copy()
            for k in range(3):
                y = int((height - side) * (0.5 + 0.45 * np.sin(0.05 * t + 2 * k)))
                x = int((width - side) * (0.5 + 0.45 * np.cos(0.03 * t * (k + 1) + k)))
                image[y : y + side, x : x + side] = (255, 64 * k, 255 - 80 * k)
            writer.write(image)


def clips_per_second(fn: Callable[[random.Random], object], *, min_reps: int, budget_s: float) -> tuple[float, float]:
    """Calls of ``fn(rng)`` per CPU second and per wall-clock second: at least ``min_reps`` calls, then
    until ``budget_s`` of CPU time is spent. With one thread, CPU time is the time on one core, which
    stays meaningful when other processes share the machine."""
    rng = random.Random(0)
    reps, wall, cpu = 0, time.perf_counter(), time.process_time()
    while reps < min_reps or time.process_time() - cpu < budget_s:
        fn(rng)
        reps += 1
    return reps / (time.process_time() - cpu), reps / (time.perf_counter() - wall)


def random_clip(num_frames: int, frames: int, stride: int, rng: random.Random) -> list[int]:
    start = rng.randrange(num_frames - (frames - 1) * stride)
    return [start + k * stride for k in range(frames)]


def ours(path: Path, frames: int, stride: int) -> Callable[[random.Random], object]:
    """Our decoder: seek to the key frame before the clip, decode forward, stop after its last frame."""
    num_frames = probe_video(path).num_frames
    return lambda rng: decode_frames(path, random_clip(num_frames, frames, stride, rng), threads=1)


def decode_everything(path: Path, frames: int, stride: int) -> Callable[[random.Random], object]:
    """PySlowFast's PyAV path: decode every frame of the video to RGB, then index the clip."""

    def run(rng: random.Random) -> torch.Tensor:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_count = 1
            video = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        return torch.from_numpy(video[random_clip(len(video), frames, stride, rng)])

    return run


def loader_clips_per_second(paths: list[Path], *, batches: int, batch_size: int = 4) -> float:
    """Training clips/s of the full DataLoader (2 workers) producing 16×224² clips."""
    from vidgrid.data.dataset import VideoClipDataset
    from vidgrid.tasks import task_for

    annotations = Annotations([Sample(p, 0) for p in paths] * 64, ["clip"], False, {})
    dataset = VideoClipDataset(annotations, target=task_for("classification", annotations).clip_target,
                               base_frames=16, sampling_rate=4, base_crop=224)
    order = list(range(len(dataset)))
    random.Random(0).shuffle(order)
    shape = ClipShape(16, 224)
    batch_list = [[(i, shape) for i in order[b * batch_size : (b + 1) * batch_size]] for b in range(batches + 1)]
    loader = DataLoader(dataset, batch_sampler=batch_list, num_workers=2, prefetch_factor=2)
    iterator = iter(loader)
    next(iterator)  # warm-up: worker start-up and the first batch
    start = time.perf_counter()
    clips = sum(len(next(iterator)[0]) for _ in range(batches))
    return clips / (time.perf_counter() - start)


def _pair(rate: tuple[float, float]) -> str:
    """``cpu (wall)`` clips/s."""
    return f"{rate[0]:>6.2f} ({rate[1]:>6.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=1.5, help="CPU seconds per single-video figure")
    parser.add_argument("--loader-batches", type=int, default=3, help="batches of 4 clips per DataLoader figure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        root = Path(tmp)
        videos: dict[tuple[str, str], Path] = {}
        for size, (width, height) in SIZES.items():
            for kname, keyint in KEYINTS.items():
                path = root / "src" / f"{size}_{'default' if keyint is None else f'k{keyint}'}.mp4"
                path.parent.mkdir(exist_ok=True)
                write_fixture(path, width, height, keyint)
                videos[size, kname] = path
        (root / "src" / "list.txt").write_text("".join(f"{videos[s, 'default keyint'].name} 0\n" for s in SIZES))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            t0 = time.perf_counter()
            prepare_command(root / "src" / "list.txt", root / "prep", root=None, short_side=320, keyint=16, workers=2)
            prepare_s = time.perf_counter() - t0
        print(f"fixtures: {SECONDS} s at {FPS} fps, x264 frame threads; data prepare of the two default-keyint "
              f"videos (short side 320, keyint 16, 2 processes): {prepare_s:.1f} s")
        for size in SIZES:
            videos[size, "prepared"] = root / "prep" / videos[size, "default keyint"].name
            info = probe_video(videos[size, "prepared"])
            print(f"  prepared {size} -> {info.width}x{info.height}, {info.num_frames} frames")

        print("\nclips/s on one core (torch.set_num_threads(1), single-threaded decoding); from CPU time, wall clock in ()")
        print(f"{'video':<10} {'encoding':<16} {'clip':<5} {'ours':>15} {'decode-all':>15} {'speed-up':>9}")
        rates: dict[tuple[str, str, str], tuple[float, float]] = {}
        for (size, kname), path in videos.items():
            for clip, (frames, stride) in CLIPS.items():
                rates[size, kname, clip] = clips_per_second(ours(path, frames, stride), min_reps=6, budget_s=args.budget)
                if kname != "prepared" and clip == "32x2":  # decode-everything does not depend on the clip
                    rates[size, kname, "all"] = clips_per_second(
                        decode_everything(path, frames, stride), min_reps=2, budget_s=args.budget)
                mine, everything = rates[size, kname, clip], rates.get((size, kname, "all"))
                extra = f"{_pair(everything)} {mine[0] / everything[0]:>8.1f}×" if everything else f"{'-':>15} {'-':>9}"
                print(f"{size:<10} {kname:<16} {clip:<5} {_pair(mine)} {extra}")

        print("\ntargets (CPU-time figures)")
        for size in SIZES:
            for clip in CLIPS:
                gain = rates[size, "2 s keyint", clip][0] / rates[size, "2 s keyint", "all"][0]
                print(f"  ours vs decode-all, 2 s keyint, {size} {clip}: {gain:.1f}× (target >= 2.5×)")
        for size in SIZES:
            for clip in CLIPS:
                gain = rates[size, "prepared", clip][0] / rates[size, "default keyint", clip][0]
                print(f"  prepared vs default-keyint source, {size} {clip}: {gain:.1f}× (target >= 2×)")

        print("\nDataLoader, 2 workers, 16x224² training clips (VideoClipDataset: stride 4, rescale + crop + flip),"
              f" wall clock; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for kname in ("2 s keyint", "prepared"):
            for size in SIZES:
                rate = loader_clips_per_second([videos[size, kname]], batches=args.loader_batches)
                print(f"  {size:<10} {kname:<16} {rate:8.2f} clips/s")
    print(f"\ntotal benchmark time {time.perf_counter() - begin:.0f} s (load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
