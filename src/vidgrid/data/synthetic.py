"""``vidgrid synth``: a small synthetic action-recognition dataset written as real H.264 MP4 files.

It is the dataset the demo and the tests train on, so it is a real video task (issue 2, part 7).
Ten classes, each video a bright target shape on a darker random background with 0-2 small, dim
distractor dots:

- motion direction: ``slide_left``, ``slide_right`` (swapped by a horizontal flip), ``slide_up``,
  ``slide_down`` (a shape crosses the frame);
- no single frame separates them: ``grow``, ``shrink`` (same size range), ``blink`` (a shape turns on
  and off at random times; its visible frames look like a ``still_*`` frame), and the motion classes
  above against the still ones (positions drawn from the same range);
- appearance: ``still_disc``, ``still_ring``, ``still_cross`` (a static shape; only its form tells
  them apart).

Colours, sizes, speeds, positions, the background gradient and the distractors are random; every
video is drawn from ``numpy.random.default_rng((seed, split, class, number))``, so the rendered
frames are reproducible from ``seed`` whatever the number of worker processes (x264's threaded
encoder may still round a few pixel values differently between runs). Output layout::

    OUT/train/<class>/<class>_000.mp4 ...   OUT/val/<class>/...
    OUT/train.csv, OUT/val.csv    ("relative/path.mp4 label" lines, the Kinetics list format)
    OUT/classes.txt               (one class name per line)
    OUT/meta.json                 ({"flip_sensitive": true, ...}: training turns the flip off)
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from vidgrid.data.encode import write_video
from vidgrid.errors import VidgridError

CLASSES = (
    "slide_left",
    "slide_right",
    "slide_up",
    "slide_down",
    "grow",
    "shrink",
    "blink",
    "still_disc",
    "still_ring",
    "still_cross",
)
SHAPES = ("disc", "ring", "cross")
SPLITS = ("train", "val")

DEFAULT_TRAIN_PER_CLASS = 40
DEFAULT_VAL_PER_CLASS = 10
DEFAULT_FRAMES = 32
DEFAULT_FPS = 16
DEFAULT_SIZE = 64
KEYINT = 16
"""Key-frame interval of the written videos (what ``vidgrid data prepare`` would produce)."""


# --------------------------------------------------------------------------------------------------
# rendering: signed distances on a (T, H, W) grid, alpha = clip(0.5 - distance) (one-pixel soft edge)


def _shape_distance(shape: str, dx: np.ndarray, dy: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Signed distance in pixels to a disc, ring or plus-shaped cross of outer ``radius``."""
    if shape == "disc":
        return np.sqrt(dx**2 + dy**2) - radius
    if shape == "ring":  # a band 0.4 radius wide: its dark hole sets it apart from a disc
        return np.abs(np.sqrt(dx**2 + dy**2) - 0.8 * radius) - 0.2 * radius
    # cross: two bars 0.4 radius wide, thin enough not to blur into a disc at a coarse multigrid crop
    # (Chebyshev distance: exact enough for a one-pixel soft edge)
    half_width = 0.2 * radius
    horizontal = np.maximum(np.abs(dx) - radius, np.abs(dy) - half_width)
    vertical = np.maximum(np.abs(dx) - half_width, np.abs(dy) - radius)
    return np.minimum(horizontal, vertical)


def _paint(canvas: np.ndarray, distance: np.ndarray, colour: np.ndarray) -> None:
    """Composite ``colour`` over float (T, H, W, 3) ``canvas`` where ``distance`` (T, H, W) < 0."""
    alpha = np.clip(0.5 - distance, 0.0, 1.0)[..., None]
    canvas *= 1.0 - alpha
    canvas += alpha * colour


def _reflect(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Positions bouncing between ``low`` and ``high`` (a triangle wave)."""
    span = max(high - low, 1e-6)
    phase = np.mod(x - low, 2 * span)
    return low + span - np.abs(phase - span)


def _background(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """Float (T, S, S, 3): a static dark random colour gradient with a faint texture."""
    start = rng.uniform(0, 110, 3)
    end = np.clip(start + rng.uniform(-40, 40, 3), 0, 120)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    ramp = (math.cos(angle) * (xx - 0.5) + math.sin(angle) * (yy - 0.5)) / math.sqrt(2) + 0.5  # in [0, 1]
    image = start + ramp[..., None] * (end - start) + rng.normal(0, 4, (size, size, 3))
    return np.repeat(image[None], frames, axis=0)


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-to-pale bright colour (brightest channel 200-255), visible on any background."""
    colour = rng.uniform(0, 255, 3)
    return colour * rng.uniform(200, 255) / max(colour.max(), 1.0)


def _distractors(canvas: np.ndarray, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> None:
    """0-2 small dots in dim random colours, each static or drifting (bouncing off the borders)."""
    frames, size = canvas.shape[0], canvas.shape[1]
    t = np.arange(frames)[:, None, None]
    for _ in range(rng.integers(0, 3)):
        radius = rng.uniform(0.02, 0.035) * size
        velocity = rng.uniform(-1, 1, 2) * size / 64 * (rng.random() < 0.5)
        x = _reflect(rng.uniform(radius, size - radius) + velocity[0] * t, radius, size - radius)
        y = _reflect(rng.uniform(radius, size - radius) + velocity[1] * t, radius, size - radius)
        _paint(canvas, np.sqrt((xx - x) ** 2 + (yy - y) ** 2) - radius, rng.uniform(60, 200, 3))


def render_video(label: str, rng: np.random.Generator, *, frames: int, size: int) -> np.ndarray:
    """One synthetic video of class ``label``: uint8 (T, S, S, 3)."""
    if label not in CLASSES:
        raise ValueError(f"unknown synthetic class {label!r}")
    canvas = _background(rng, frames, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)  # (S, S) pixel centres
    _distractors(canvas, rng, yy, xx)
    colour = _bright_colour(rng)
    t = np.arange(frames, dtype=np.float64)[:, None, None]  # (T, 1, 1) broadcasts over the grid
    shape = label.removeprefix("still_") if label.startswith("still_") else SHAPES[rng.integers(len(SHAPES))]
    scale = size / 64

    radius = np.full_like(t, rng.uniform(0.12, 0.18) * size)
    cx, cy = np.full_like(t, 0.0), np.full_like(t, 0.0)
    visible = np.ones_like(t, dtype=bool)
    if label.startswith("slide"):
        r = float(radius.flat[0])
        room = size - 2 * r - 2
        speed = min(rng.uniform(0.6, 1.4) * scale, 0.95 * room / max(frames - 1, 1))
        travel = speed * (frames - 1)
        start = rng.uniform(r + 1, r + 1 + room - travel)
        along = start + speed * t if label in ("slide_right", "slide_down") else start + travel - speed * t
        across = cy + rng.uniform(r + 1, size - r - 1)
        cx, cy = (along, across) if label in ("slide_left", "slide_right") else (across, along)
    else:
        if label in ("grow", "shrink"):
            small, big = rng.uniform(0.07, 0.10) * size, rng.uniform(0.18, 0.24) * size
            fraction = t / max(frames - 1, 1)
            radius = small + (big - small) * (fraction if label == "grow" else 1 - fraction)
        else:  # still or blink: one size range, so a visible blink frame looks like a still frame
            radius = np.full_like(t, rng.uniform(0.16, 0.24) * size)
            if label == "blink":
                visible = _blink_pattern(rng, frames)[:, None, None]
        r = float(radius.max())
        cx, cy = cx + rng.uniform(r + 1, size - r - 1), cy + rng.uniform(r + 1, size - r - 1)
    distance = _shape_distance(shape, xx - cx, yy - cy, radius)
    _paint(canvas, np.where(visible, distance, np.inf), colour)
    return _to_uint8(canvas)


def _blink_pattern(rng: np.random.Generator, frames: int) -> np.ndarray:
    """bool (T,): alternating on/off runs of 3-7 frames, starting in a random state."""
    pattern, state = [], bool(rng.integers(2))
    while len(pattern) < frames:
        pattern += [state] * int(rng.integers(3, 8))
        state = not state
    return np.array(pattern[:frames])


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# writing


def _write_one(task: tuple[Path, str, int, int, int, int, int, int]) -> None:
    """Render and encode one video (runs in a worker process)."""
    path, label, seed, split, number, frames, size, fps = task
    rng = np.random.default_rng((seed, split, CLASSES.index(label), number))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, render_video(label, rng, frames=frames, size=size), fps, keyint=KEYINT, crf=18)


def write_synthetic_dataset(
    out_dir: Path,
    *,
    seed: int = 0,
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    val_per_class: int = DEFAULT_VAL_PER_CLASS,
    frames: int = DEFAULT_FRAMES,
    fps: int = DEFAULT_FPS,
    size: int = DEFAULT_SIZE,
    workers: int | None = None,
) -> dict:
    """Write the dataset under ``out_dir`` (see the module docstring) and return its ``meta.json`` dict.

    ``workers``: encoder processes (default: up to 4 of the CPU cores; 1 = in this process).
    """
    _check("train_per_class", train_per_class, 1)
    _check("val_per_class", val_per_class, 1)
    _check("frames", frames, 8)
    _check("fps", fps, 1)
    _check("size", size, 16)
    if size % 2:
        raise VidgridError(f"synth: size = {size}: expected an even number of pixels (H.264 yuv420p)")
    if out_dir.exists() and not out_dir.is_dir():
        raise VidgridError(f"{out_dir}: exists and is not a folder")
    workers = workers or min(4, os.cpu_count() or 1)
    _check("workers", workers, 1)

    lists: dict[str, list[str]] = {split: [] for split in SPLITS}
    tasks = []
    for split_id, (split, count) in enumerate(zip(SPLITS, (train_per_class, val_per_class))):
        for label_id, label in enumerate(CLASSES):
            for number in range(count):
                relative = f"{split}/{label}/{label}_{number:03d}.mp4"
                lists[split].append(f"{relative} {label_id}")
                tasks.append((out_dir / relative, label, seed, split_id, number, frames, size, fps))

    out_dir.mkdir(parents=True, exist_ok=True)
    if workers == 1:
        for task in tasks:
            _write_one(task)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_one, tasks, chunksize=8))

    meta = {
        "name": "vidgrid-synthetic",
        "flip_sensitive": True,
        "seed": seed,
        "classes": list(CLASSES),
        "train_per_class": train_per_class,
        "val_per_class": val_per_class,
        "frames": frames,
        "fps": fps,
        "size": size,
    }
    for split in SPLITS:
        (out_dir / f"{split}.csv").write_text("".join(f"{line}\n" for line in lists[split]))
    (out_dir / "classes.txt").write_text("".join(f"{name}\n" for name in CLASSES))
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _check(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise VidgridError(f"synth: {name} = {value}: expected an integer >= {minimum}")


def synth_command(
    out_dir: Path,
    *,
    seed: int,
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    val_per_class: int = DEFAULT_VAL_PER_CLASS,
    frames: int = DEFAULT_FRAMES,
    fps: int = DEFAULT_FPS,
    size: int = DEFAULT_SIZE,
    workers: int | None = None,
) -> int:
    """``vidgrid synth OUT_DIR``: write the dataset and print a one-line summary."""
    started = time.perf_counter()
    meta = write_synthetic_dataset(
        out_dir, seed=seed, train_per_class=train_per_class, val_per_class=val_per_class,
        frames=frames, fps=fps, size=size, workers=workers,
    )
    classes = len(meta["classes"])
    print(
        f"wrote {classes * train_per_class} training and {classes * val_per_class} validation videos "
        f"({classes} classes, {frames} frames of {size}x{size} at {fps} fps) to {out_dir} "
        f"in {time.perf_counter() - started:.1f}s; train with data.train_list={out_dir / 'train.csv'}"
    )
    return 0
