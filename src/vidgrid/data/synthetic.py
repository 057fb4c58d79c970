"""``vidgrid synth``: small synthetic action-recognition datasets written as real H.264 MP4 files.

The demo and the tests train on the default one (the ``demo`` class set); the other class sets
(:data:`~vidgrid.data.synthetic_classes.PRESETS`) isolate one kind of evidence each: form only
(``appearance``), motion direction (``direction``), rotation sense (``rotation``), brightness over
time (``timing``), or a mix of motions (``motion``). What each class looks like is described in
:mod:`vidgrid.data.synthetic_classes`.

Colours, sizes, speeds, positions, the background gradient and the distractors are random; every
video is drawn from ``numpy.random.default_rng((seed, split, class, number))`` (``class``: the
class's position in :data:`~vidgrid.data.synthetic_classes.CLASSES`, whatever set it is in), so the
rendered frames, and the files (:class:`~vidgrid.data.encode.VideoWriter` encodes deterministically),
are reproducible from ``seed`` and the options whatever the number of worker processes.
Output layout::

    OUT/train/<class>/<class>_000.mp4 ...   OUT/val/<class>/...
    OUT/train.csv, OUT/val.csv    ("relative/path.mp4 label" lines, the Kinetics list format)
    OUT/classes.txt               (one class name per line)
    OUT/meta.json                 (every option, and "flip_sensitive": training turns the flip off)
    OUT/correspondence.json       (with --coarse: {"relation": "coarse", "classes": {fine: coarse}, ...};
                                   with --style negative or soft alone: {"relation": "restyled", "classes": {c: c}, ...})
    OUT/boxes.csv                 (with --boxes: the main object's box in every frame of every video,
                                   "path,frame,x1,y1,x2,y2" in pixels; train with data.boxes=OUT/boxes.csv)

**Overlapping datasets** (``--coarse``): a second dataset whose classes each merge several fine
classes (``horizontal`` = ``slide_left`` + ``slide_right``), its videos rendered from the fine classes
in turn on random streams of their own (``(seed, split, class, number, 1)``: none is a video of the
fine dataset of the same seed); ``correspondence.json`` states the true class correspondence, the
ground truth of multi-dataset training's projection heads. ``--style negative`` or ``soft`` writes
the classes in another look (every frame's negative, or the target out of focus), also on streams of
their own (``(..., number, k)``, k = 2 or 3, after the ``1`` of ``--coarse``), and
``correspondence.json``: each class corresponds to the class of the same name in the plain style.

The main object of a video is the moving or changing shape that defines its class; its box bounds
the pixels the shape covers in that frame (:func:`~vidgrid.data.synthetic_classes.object_boxes`),
whatever its opacity (a faded or blinked-off object keeps its place). Distractors have no box.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from vidgrid.data.encode import write_video
from vidgrid.data.synthetic_classes import (
    CLASSES,
    DEFAULT_DISTRACTORS,
    DEFAULT_MOVING_DISTRACTORS,
    STYLES,
    coarse_flip_sensitive,
    preset_name,
    render_video_and_track,
    resolve_classes,
    resolve_coarse,
)
from vidgrid.errors import VidgridError

SPLITS = ("train", "val")

DEFAULT_CLASSES = "demo"
DEFAULT_TRAIN_PER_CLASS = 40
DEFAULT_VAL_PER_CLASS = 10
DEFAULT_FRAMES = 32
DEFAULT_FPS = 16
DEFAULT_SIZE = 64
MIN_SIZE = 16
KEYINT = 16
"""Key-frame interval of the written videos (what ``vidgrid data prepare`` would produce)."""

_SIZE_CHOICES = f"expected N or WxH in pixels, each even and >= {MIN_SIZE} (e.g. 64 or 128x96)"


def parse_size(text: str) -> tuple[int, int]:
    """``"N"`` or ``"WxH"`` as (width, height); the values are checked by :func:`write_synthetic_dataset`."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not match:
        raise VidgridError(f"synth: --size {text!r}: {_SIZE_CHOICES}")
    width = int(match[1])
    return width, int(match[2]) if match[2] else width


# --------------------------------------------------------------------------------------------------
# writing


BOXES_FILE = "boxes.csv"
CORRESPONDENCE_FILE = "correspondence.json"


def _write_one(task: tuple) -> list[str]:
    """Render and encode one video (runs in a worker process); returns its ``boxes.csv`` lines."""
    path, relative, label, stream, seed, split, number, fps, render_options = task
    rng = np.random.default_rng((seed, split, CLASSES.index(label), number, *stream))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, boxes = render_video_and_track(label, rng, **render_options)
    write_video(path, frames, fps, keyint=KEYINT, crf=18)
    return [f"{relative},{t},{x1:g},{y1:g},{x2:g},{y2:g}" for t, (x1, y1, x2, y2) in enumerate(boxes.tolist())]


def write_synthetic_dataset(
    out_dir: Path,
    *,
    seed: int = 0,
    classes: str | Sequence[str] = DEFAULT_CLASSES,
    width: int = DEFAULT_SIZE,
    height: int = DEFAULT_SIZE,
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    val_per_class: int = DEFAULT_VAL_PER_CLASS,
    frames: int = DEFAULT_FRAMES,
    fps: int = DEFAULT_FPS,
    distractors: int = DEFAULT_DISTRACTORS,
    moving_distractors: float = DEFAULT_MOVING_DISTRACTORS,
    boxes: bool = False,
    coarse: str | None = None,
    style: str = STYLES[0],
    workers: int | None = None,
) -> dict:
    """Write the dataset under ``out_dir`` (see the module docstring) and return its ``meta.json`` dict.

    ``classes``: a preset name (``demo``, ``appearance``, ``direction``, ``rotation``, ``timing``,
    ``motion``), a comma-separated list or a sequence of class names; ``width``, ``height``: frame size
    in pixels (even, >= 16); ``train_per_class``, ``val_per_class``: videos per class and split;
    ``frames``, ``fps``: length and rate of every video; ``distractors``: the most distractor dots in
    a video (each video has 0 to that many); ``moving_distractors``: probability that a dot drifts;
    ``coarse``: write coarse classes instead (:func:`~vidgrid.data.synthetic_classes.resolve_coarse`:
    a preset or ``coarse=fine+fine,...``; ``classes`` is then ignored) and ``correspondence.json``;
    ``style``: how the frames look (:data:`~vidgrid.data.synthetic_classes.STYLES`; another than
    ``plain`` also writes ``correspondence.json``);
    ``boxes``: also write ``boxes.csv``, the main object's track of every video; ``workers``:
    encoder processes (default: up to 4 of the CPU cores; 1 = in this process). Invalid
    options raise :class:`~vidgrid.errors.VidgridError` naming the ``vidgrid synth`` flag.
    """
    groups = resolve_coarse(coarse) if coarse else {name: (name,) for name in resolve_classes(classes)}
    names = tuple(groups)
    if style not in STYLES:
        raise VidgridError(f"synth: --style {style!r}: expected one of {', '.join(STYLES)}")
    restyled = style != STYLES[0]
    stream = ((1,) if coarse else ()) + ((STYLES.index(style) + 1,) if restyled else ())
    _check("train-per-class", train_per_class, 1)
    _check("val-per-class", val_per_class, 1)
    _check("frames", frames, 8)
    _check("fps", fps, 1)
    if min(width, height) < MIN_SIZE or width % 2 or height % 2:
        raise VidgridError(f"synth: --size {width}x{height}: {_SIZE_CHOICES}; H.264 yuv420p needs even sizes")
    _check("distractors", distractors, 0)
    if not 0.0 <= moving_distractors <= 1.0:
        raise VidgridError(f"synth: --moving-distractors {moving_distractors}: expected a probability from 0 to 1")
    if out_dir.exists() and not out_dir.is_dir():
        raise VidgridError(f"{out_dir}: exists and is not a folder")
    workers = workers or min(4, os.cpu_count() or 1)
    _check("workers", workers, 1)

    render_options = dict(
        frames=frames, width=width, height=height, distractors=distractors, moving_distractors=moving_distractors,
        style=style,
    )
    lists: dict[str, list[str]] = {split: [] for split in SPLITS}
    tasks = []
    for split_id, (split, count) in enumerate(zip(SPLITS, (train_per_class, val_per_class))):
        for label_id, label in enumerate(names):
            for number in range(count):
                relative = f"{split}/{label}/{label}_{number:03d}.mp4"
                lists[split].append(f"{relative} {label_id}")
                fine = groups[label][number % len(groups[label])]
                tasks.append((out_dir / relative, relative, fine, stream, seed, split_id, number, fps, render_options))

    out_dir.mkdir(parents=True, exist_ok=True)
    if workers == 1:
        tracks = [_write_one(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            tracks = list(pool.map(_write_one, tasks, chunksize=8))

    meta = {
        "name": "vidgrid-synthetic",
        "flip_sensitive": coarse_flip_sensitive(groups),
        "seed": seed,
        "preset": preset_name(names),
        "classes": list(names),
        "width": width,
        "height": height,
        "train_per_class": train_per_class,
        "val_per_class": val_per_class,
        "frames": frames,
        "fps": fps,
        "distractors": distractors,
        "moving_distractors": moving_distractors,
        "style": style,
        "boxes": BOXES_FILE if boxes else None,
    }
    for split in SPLITS:
        (out_dir / f"{split}.csv").write_text("".join(f"{line}\n" for line in lists[split]))
    (out_dir / "classes.txt").write_text("".join(f"{name}\n" for name in names))
    if boxes:
        (out_dir / BOXES_FILE).write_text("path,frame,x1,y1,x2,y2\n" + "".join(f"{line}\n" for video in tracks for line in video))
    if coarse:
        meta["coarse"] = {name: list(fine) for name, fine in groups.items()}
    if coarse or restyled:
        correspondence = {
            "relation": "coarse" if coarse else "restyled",
            "style": style,
            "classes": {f: name for name, fine in groups.items() for f in fine},
        }
        (out_dir / CORRESPONDENCE_FILE).write_text(json.dumps(correspondence, indent=2) + "\n")
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _check(flag: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise VidgridError(f"synth: --{flag} {value}: expected an integer >= {minimum}")


def synth_command(out_dir: Path, *, size: str | None = None, **options) -> int:
    """``vidgrid synth OUT_DIR``: write the dataset and print a one-line summary.

    ``size``: ``"N"`` or ``"WxH"``; ``options``: the keyword arguments of :func:`write_synthetic_dataset`.
    """
    started = time.perf_counter()
    if size is not None:
        options["width"], options["height"] = parse_size(size)
    meta = write_synthetic_dataset(out_dir, **options)
    classes = len(meta["classes"])
    label = f"'{meta['preset']}' " if meta["preset"] else ""
    print(
        f"wrote {classes * meta['train_per_class']} training and {classes * meta['val_per_class']} validation "
        f"videos ({classes} {label}classes: {', '.join(meta['classes'])}; {meta['frames']} frames of "
        f"{meta['width']}x{meta['height']} at {meta['fps']} fps; up to {meta['distractors']} distractors, "
        f"{meta['moving_distractors']:.0%} moving; {meta['style']} style) to {out_dir} in {time.perf_counter() - started:.1f}s; "
        f"train with data.train_list={out_dir / 'train.csv'}"
        + (f" data.boxes={out_dir / BOXES_FILE}" if meta["boxes"] else "")
    )
    return 0
