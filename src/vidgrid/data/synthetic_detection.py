"""``vidgrid synth --task detection``: a small spatio-temporal action-detection dataset in the AVA
formats (:mod:`vidgrid.data.formats.ava`), rendered with the shapes of :mod:`vidgrid.data.synthetic_classes`.

Every video shows one to three *actors* (bright discs of radius 0.09-0.12 of the short side, apart
from each other) on a dark static gradient. Each actor does one or more of the atomic actions of
:data:`ACTIONS` at once (each with probability 0.4, at least one):

- ``walk``: drifts horizontally at 0.6-1.0 px per frame (at side 64), bouncing off the borders;
- ``jump``: bounces up by 0.15 side every 10-14 frames;
- ``wave``: blinks, on/off runs of 3-5 frames;
- ``breathe``: its radius swells and shrinks by 50 % every 10-14 frames;
- ``carry``: a small dot of another colour rides beside it.

Annotations are at one keyframe per second (1 s, 2 s, ... while a whole second of video follows):
the actor's box (the pixels it and a carried dot cover in that frame, normalised) with its actions.
Proposals, as a person detector after non-maximum suppression gives them: each true box jittered
(σ 3 % of the box's size, score 0.8-1.0), plus 0-2 false positives per keyframe (random boxes,
scores 0.2-0.85). Files::

    OUT/videos/<split>_<NNNN>.mp4           OUT/label_map.pbtxt
    OUT/train.csv, OUT/val.csv              (video_id,timestamp_s,x1,y1,x2,y2,action_id,person_id)
    OUT/train_proposals.csv, OUT/val_proposals.csv   (video_id,timestamp_s,x1,y1,x2,y2,score)
    OUT/meta.json

Every video is drawn from ``numpy.random.default_rng((seed, split, number))``, so the dataset is
reproducible from ``--seed``.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from vidgrid.data.encode import write_video
from vidgrid.data.synthetic_classes import background, bright_colour, object_boxes, paint, shape_distance
from vidgrid.errors import VidgridError

ACTIONS = ("walk", "jump", "wave", "breathe", "carry")
ACTION_PROBABILITY = 0.4
SPLITS = ("train", "val")
KEYINT = 16


def _actions(rng: np.random.Generator) -> tuple[str, ...]:
    """A non-empty random subset of :data:`ACTIONS`."""
    while True:
        chosen = tuple(a for a in ACTIONS if rng.random() < ACTION_PROBABILITY)
        if chosen:
            return chosen


def _places(rng: np.random.Generator, count: int, width: int, height: int, reach: float) -> list[tuple[float, float]]:
    """``count`` actor centres ``reach`` + 1 px from the borders (and 0.15 side more from the top, room
    for a jump), each in its own vertical lane when the lanes are wider than ``2·reach``, else anywhere."""
    lane = width / count
    places = []
    for k in range(count):
        if lane > 2 * reach + 2:
            x = rng.uniform(k * lane + reach + 1, (k + 1) * lane - reach - 1)
        else:
            x = rng.uniform(reach + 1, width - reach - 1)
        places.append((x, rng.uniform(reach + 0.15 * min(width, height) + 1, height - reach - 1)))
    return places


def render_actors(
    rng: np.random.Generator, *, frames: int, width: int, height: int
) -> tuple[np.ndarray, list[tuple[tuple[str, ...], np.ndarray]]]:
    """uint8 (T, H, W, 3) frames and, per actor, its actions and float (T, 4) pixel boxes."""
    side = min(width, height)
    canvas = background(rng, frames, width, height)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    count = int(rng.integers(1, 4))
    radius = rng.uniform(0.09, 0.12) * side
    actors = []
    for x0, y0 in _places(rng, count, width, height, 1.8 * radius):
        actions = _actions(rng)
        r = np.full_like(t, radius)
        x, y = np.full_like(t, x0), np.full_like(t, y0)
        opacity = np.ones_like(t)
        if "walk" in actions:
            low, high = 1.8 * radius + 1, width - 1.8 * radius - 1
            span = max(high - low, 1e-6)
            phase = np.mod(x0 - low + rng.choice([-1, 1]) * rng.uniform(0.6, 1.0) * side / 64 * t, 2 * span)
            x = low + span - np.abs(phase - span)
        if "jump" in actions:
            y = y0 - 0.15 * side * np.abs(np.sin(math.pi * t / rng.uniform(10, 14) + rng.uniform(0, math.pi)))
        if "breathe" in actions:
            r = radius * (1 + 0.5 * np.sin(2 * math.pi * t / rng.uniform(10, 14) + rng.uniform(0, 2 * math.pi)))
        if "wave" in actions:
            pattern, state = [], bool(rng.integers(2))
            while len(pattern) < frames:
                pattern += [float(state)] * int(rng.integers(3, 6))
                state = not state
            opacity = np.array(pattern[:frames])[:, None, None]
        body = shape_distance("disc", xx - x, yy - y, r)
        paint(canvas, body, bright_colour(rng), opacity)
        distance = body
        if "carry" in actions:
            dot = shape_distance("disc", xx - (x + 1.5 * r), yy - y, 0.5 * r)
            paint(canvas, dot, rng.uniform(120, 255, 3))
            distance = np.minimum(body, dot)
        actors.append((actions, object_boxes(distance)))
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8), actors


def _jitter(rng: np.random.Generator, box: np.ndarray, sigma: float) -> list[float]:
    """A box moved and resized by Gaussian noise of ``sigma`` × its size, kept inside [0, 1]."""
    w, h = box[2] - box[0], box[3] - box[1]
    noisy = box + rng.normal(0, sigma, 4) * np.array([w, h, w, h])
    x1, y1 = np.clip(noisy[:2], 0, 1)
    x2, y2 = max(min(noisy[2], 1.0), x1 + 1e-3), max(min(noisy[3], 1.0), y1 + 1e-3)
    return [float(x1), float(y1), float(x2), float(y2)]


def _write_one(task: tuple) -> tuple[list[str], list[str]]:
    """Render, encode and annotate one video (in a worker); its boxes CSV and proposals CSV lines."""
    path, video, seed, split, number, frames, fps, width, height = task
    rng = np.random.default_rng((seed, split, number))
    pixels, actors = render_actors(rng, frames=frames, width=width, height=height)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, pixels, fps, keyint=KEYINT, crf=18)
    scale = np.array([width, height, width, height], dtype=np.float64)
    boxes, proposals = [], []
    for second in range(1, (frames - 1) // fps + 1):
        if second * fps + fps // 2 > frames:
            break
        for person, (actions, track) in enumerate(actors):
            box = np.clip(track[second * fps] / scale, 0, 1)
            corners = ",".join(f"{v:.4f}" for v in box)
            boxes += [f"{video},{second},{corners},{ACTIONS.index(a) + 1},{person}" for a in actions]
            jittered = ",".join(f"{v:.4f}" for v in _jitter(rng, box, 0.03))
            proposals.append(f"{video},{second},{jittered},{rng.uniform(0.8, 1.0):.3f}")
        for _ in range(int(rng.integers(0, 3))):
            w, h = rng.uniform(0.15, 0.35, 2)
            x1, y1 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
            proposals.append(f"{video},{second},{x1:.4f},{y1:.4f},{x1 + w:.4f},{y1 + h:.4f},{rng.uniform(0.2, 0.85):.3f}")
    return boxes, proposals


def write_detection_dataset(out_dir: Path, *, seed: int = 0, train_videos: int = 240, val_videos: int = 60,
                            frames: int = 48, fps: int = 16, width: int = 96, height: int = 72,
                            workers: int | None = None) -> dict:
    """Write the dataset under ``out_dir`` (see the module docstring) and return its ``meta.json`` dict."""
    for flag, value, low in (("train-per-class", train_videos, 1), ("val-per-class", val_videos, 1),
                             ("fps", fps, 1), ("frames", frames, 2 * fps + fps // 2)):
        if value < low:
            raise VidgridError(f"synth: --{flag} {value}: expected an integer >= {low} (detection: keyframes every second)")
    if min(width, height) < 32 or width % 2 or height % 2:
        raise VidgridError(f"synth: --size {width}x{height}: detection needs even sizes >= 32")
    tasks = [(out_dir / "videos" / f"{split}_{n:04d}.mp4", f"{split}_{n:04d}", seed, s, n, frames, fps, width, height)
             for s, (split, count) in enumerate(zip(SPLITS, (train_videos, val_videos))) for n in range(count)]
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or min(4, os.cpu_count() or 1)
    if workers == 1:
        results = [_write_one(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_write_one, tasks, chunksize=4))
    for s, split in enumerate(SPLITS):
        mine = [r for task, r in zip(tasks, results) if task[3] == s]
        (out_dir / f"{split}.csv").write_text("".join(f"{line}\n" for boxes, _ in mine for line in boxes))
        (out_dir / f"{split}_proposals.csv").write_text("".join(f"{line}\n" for _, props in mine for line in props))
    (out_dir / "label_map.pbtxt").write_text("".join(f'item {{\n  name: "{a}"\n  id: {k}\n}}\n' for k, a in enumerate(ACTIONS, 1)))
    meta = {"name": "vidgrid-synthetic-detection", "seed": seed, "actions": list(ACTIONS), "train_videos": train_videos,
            "val_videos": val_videos, "frames": frames, "fps": fps, "width": width, "height": height}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def synth_detection_command(out_dir: Path, *, seed: int, train_per_class: int | None, val_per_class: int | None,
                            frames: int | None, fps: int | None, size: str | None, workers: int | None,
                            **classification_only: object) -> int:
    """``vidgrid synth OUT --task detection``: write the dataset and print a one-line summary; the
    classification-only flags are refused."""
    from vidgrid.data.synthetic import parse_size

    given = [name for name, value in classification_only.items() if value is not None]
    if given:
        raise VidgridError(f"synth --task detection: --{given[0].replace('_', '-')} applies to classification data only")
    options: dict = {"seed": seed, "workers": workers}
    for key, value in (("train_videos", train_per_class), ("val_videos", val_per_class), ("frames", frames), ("fps", fps)):
        if value is not None:
            options[key] = value
    if size is not None:
        options["width"], options["height"] = parse_size(size)
    meta = write_detection_dataset(out_dir, **options)
    print(f"wrote {meta['train_videos']} training and {meta['val_videos']} validation videos ({meta['frames']} frames of "
          f"{meta['width']}x{meta['height']} at {meta['fps']} fps; actions: {', '.join(meta['actions'])}) in the AVA formats to "
          f"{out_dir}; train with: vidgrid train demo_detect data.train_list={out_dir / 'train.csv'} "
          f"data.val_list={out_dir / 'val.csv'} data.train_proposals={out_dir / 'train_proposals.csv'} "
          f"data.val_proposals={out_dir / 'val_proposals.csv'} data.label_map={out_dir / 'label_map.pbtxt'} "
          f"data.root={out_dir / 'videos'}")
    return 0
