"""AVA spatio-temporal action annotations (Gu et al., CVPR 2018; X3D supplement §A.1).

Files, all plain text (never pickles):

- **boxes CSV** (``data.train_list``, ``data.val_list``): ``video_id,timestamp_s,x1,y1,x2,y2,action_id,person_id``,
  one row per (person box, action); box corners in fractions of the frame, action ids 1-based as the
  label map numbers them. Rows of one person at one timestamp (same ``person_id`` and box) make one
  multi-label box; actions the label map does not list are dropped (AVA's 60 evaluated of 80 classes).
- **label map** (``data.label_map``, default ``label_map.pbtxt`` beside the list): ``item { name: "..." id: N }``
  entries; their order is the class order, and they are the evaluated classes.
- **excluded timestamps** (``data.exclusions``, optional): ``video_id,timestamp_s`` rows; such keyframes
  are neither trained on nor evaluated.
- **person proposals** (``data.train_proposals``, ``data.val_proposals``, optional):
  ``video_id,timestamp_s,x1,y1,x2,y2,score``, or PySlowFast's ``*_predicted_boxes.csv`` layout with an
  (ignored, possibly empty) action column before the score.

Each keyframe ``(video_id, timestamp_s)`` of the boxes CSV is one :class:`~vidgrid.data.formats.records.Sample`
with a :class:`~vidgrid.data.formats.records.Keyframe`; the video is ``<root>/<video_id>.<ext>`` (the
first video extension found, ``.mp4`` when none is). Training boxes are the annotated ones plus the
proposals above ``detection.proposal_score`` that overlap one by IoU > ``detection.train_iou`` (they
take its classes); test boxes are the proposals above ``detection.proposal_score`` (X3D supplement
§A.1: 0.9 and 0.8). Without a proposals file the annotated boxes are the test boxes too.
A malformed line is a one-line :class:`~vidgrid.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vidgrid.data.formats.folder import VIDEO_EXTENSIONS
from vidgrid.data.formats.records import Keyframe, NormBox, Sample, read_text
from vidgrid.data.formats.registry import AnnotationFormat, register_format
from vidgrid.errors import DataError

LABEL_MAP_FILE = "label_map.pbtxt"
_ITEM = re.compile(r"item\s*\{([^}]*)\}", re.S)
_NAME = re.compile(r"""\bname\s*:\s*["']([^"']*)["']""")
_ID = re.compile(r"\b(?:id|label_id)\s*:\s*(-?\d+)")

KeyframeKey = tuple[str, float]
"""``(video_id, timestamp_s)``."""


@dataclass(frozen=True)
class ProposalSettings:
    """Where the proposals of a split come from and which of them become boxes to classify."""

    proposals: Path | None
    """Proposals CSV, or None: the annotated boxes only."""
    exclusions: Path | None
    """Excluded-timestamps CSV, or None."""
    train_iou: float | None
    """Training: a proposal joins when its IoU with an annotated box exceeds this; None: test boxes."""
    min_score: float
    """Proposals at or below this detector score are dropped."""


def read_label_map(path: Path) -> tuple[list[int], list[str]]:
    """Action ids and class names of a ``.pbtxt`` label map, in file order."""
    if not path.is_file():
        raise DataError(f"{path}: label map not found (set 'data.label_map' to the .pbtxt file)")
    text = read_text(path)
    ids, names = [], []
    for match in _ITEM.finditer(text):
        line = text[: match.start()].count("\n") + 1
        name, number = _NAME.search(match[1]), _ID.search(match[1])
        if name is None or number is None:
            raise DataError(f"{path}: line {line}: expected 'item {{ name: \"...\" id: N }}'")
        if int(number[1]) < 1 or int(number[1]) in ids:
            raise DataError(f"{path}: line {line}: id {number[1]} must be >= 1 and appear once")
        ids.append(int(number[1]))
        names.append(name[1])
    if not ids:
        raise DataError(f"{path}: no 'item {{ name: \"...\" id: N }}' entries")
    return ids, names


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of the non-empty, non-comment CSV lines."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = csv.reader(read_text(path).splitlines())
    return [(n, [f.strip() for f in row]) for n, row in enumerate(rows, 1) if row and "".join(row).strip() and not row[0].startswith("#")]


def _key(video: str, time: str, where: str) -> KeyframeKey:
    if not video:
        raise DataError(f"{where}: empty video_id")
    try:
        seconds = float(time)
    except ValueError:
        raise DataError(f"{where}: timestamp {time!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise DataError(f"{where}: timestamp {time!r} must be a number of seconds >= 0")
    return video, round(seconds, 3)


def _box(fields: Sequence[str], where: str) -> NormBox:
    """A normalised box: four numbers in [0, 1] with x1 < x2 and y1 < y2."""
    try:
        x1, y1, x2, y2 = (float(v) for v in fields)
    except ValueError:
        raise DataError(f"{where}: expected four box numbers, got {','.join(fields)!r}") from None
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise DataError(f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) needs corners in [0, 1] with x1 < x2, y1 < y2")
    return x1, y1, x2, y2


def read_ava_boxes(path: Path, action_ids: Sequence[int]) -> dict[KeyframeKey, list[tuple[NormBox, tuple[int, ...]]]]:
    """Keyframe -> its persons' boxes and class indices (into ``action_ids``), from the boxes CSV."""
    index = {a: k for k, a in enumerate(action_ids)}
    persons: dict[KeyframeKey, dict[tuple, tuple[NormBox, set[int]]]] = {}
    for number, row in _rows(path):
        where = f"{path}: line {number}"
        if len(row) != 8:
            raise DataError(f"{where}: expected 'video_id,timestamp_s,x1,y1,x2,y2,action_id,person_id', got {len(row)} fields")
        key, box = _key(row[0], row[1], where), _box(row[2:6], where)
        try:
            action = int(row[6])
        except ValueError:
            raise DataError(f"{where}: action_id {row[6]!r} is not an integer") from None
        if action < 1:
            raise DataError(f"{where}: action_id {action} must be >= 1 (AVA ids are 1-based)")
        person = persons.setdefault(key, {}).setdefault((row[7], box), (box, set()))
        if action in index:
            person[1].add(index[action])
    return {key: [(box, tuple(sorted(labels))) for box, labels in people.values() if labels] for key, people in persons.items()}


def read_exclusions(path: Path) -> set[KeyframeKey]:
    """The excluded keyframes: ``video_id,timestamp_s`` rows."""
    keys = set()
    for number, row in _rows(path):
        if len(row) != 2:
            raise DataError(f"{path}: line {number}: expected 'video_id,timestamp_s', got {len(row)} fields")
        keys.add(_key(row[0], row[1], f"{path}: line {number}"))
    return keys


def read_proposals(path: Path) -> dict[KeyframeKey, list[tuple[NormBox, float]]]:
    """Keyframe -> proposals ``(box, score)``: 7 columns, or 8 with an action column before the score."""
    found: dict[KeyframeKey, list[tuple[NormBox, float]]] = {}
    for number, row in _rows(path):
        where = f"{path}: line {number}"
        if len(row) not in (7, 8):
            raise DataError(f"{where}: expected 'video_id,timestamp_s,x1,y1,x2,y2[,action_id],score', got {len(row)} fields")
        key, box = _key(row[0], row[1], where), _box(row[2:6], where)
        try:
            score = float(row[-1])
        except ValueError:
            raise DataError(f"{where}: score {row[-1]!r} is not a number") from None
        found.setdefault(key, []).append((box, score))
    return found


def box_iou(a: NormBox, b: NormBox) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def select_rois(truth: Sequence[tuple[NormBox, tuple[int, ...]]], proposals: Sequence[tuple[NormBox, float]], *,
                train_iou: float | None, min_score: float) -> tuple[tuple[NormBox, tuple[int, ...]], ...]:
    """The boxes to classify at one keyframe (X3D supplement §A.1): training (``train_iou`` set) the
    annotated boxes plus each confident proposal whose best IoU with an annotated box exceeds
    ``train_iou``, with that box's classes; testing the confident proposals (classes unknown)."""
    confident = [box for box, score in proposals if score > min_score]
    if train_iou is None:
        return tuple((box, ()) for box in confident)
    rois = list(truth)
    for box in confident:
        if truth:
            best = max(truth, key=lambda t: box_iou(box, t[0]))
            if box_iou(box, best[0]) > train_iou:
                rois.append((box, best[1]))
    return tuple(rois)


def video_path(root: Path, video: str) -> Path:
    """``<root>/<video_id>.<ext>``: the first video extension present, else ``.mp4`` (then reported missing)."""
    for ext in sorted(VIDEO_EXTENSIONS):
        if (root / f"{video}{ext}").is_file():
            return root / f"{video}{ext}"
    return root / f"{video}.mp4"


def read_ava(source: Path, root: Path, class_file: Path | None) -> tuple[list[Sample], list[str]]:
    """One sample per annotated keyframe (its boxes are also its boxes to classify); classes from the label map."""
    ids, names = read_label_map(class_file if class_file is not None else source.parent / LABEL_MAP_FILE)
    paths: dict[str, Path] = {}
    samples = []
    for (video, time), people in sorted(read_ava_boxes(source, ids).items()):
        path = paths.setdefault(video, video_path(root, video))
        labels = tuple(sorted({c for _, classes in people for c in classes}))
        samples.append(Sample(path, -1, labels, keyframe=Keyframe(time, tuple(people), tuple(people))))
    if not samples:
        raise DataError(f"{source}: no keyframe with an action of the label map")
    return samples, names


def video_id(sample: Sample) -> str:
    """The ``video_id`` a keyframe sample was read with (its file name without a video extension)."""
    name = sample.path.name
    suffix = sample.path.suffix
    return name[: -len(suffix)] if suffix.lower() in VIDEO_EXTENSIONS else name


def apply_proposals(samples: Sequence[Sample], settings: ProposalSettings) -> list[Sample]:
    """The keyframes not excluded, with their boxes to classify chosen by :func:`select_rois`."""
    if any(s.keyframe is None for s in samples):
        raise DataError("proposals and exclusions ('data.*_proposals', 'data.exclusions') need keyframe "
                        "annotations ('data.format' = 'ava')")
    excluded = read_exclusions(settings.exclusions) if settings.exclusions else set()
    proposals = read_proposals(settings.proposals) if settings.proposals else None
    kept = []
    for sample in samples:
        keyframe = sample.keyframe
        key = (video_id(sample), keyframe.time_s)
        if key in excluded:
            continue
        if proposals is not None:
            rois = select_rois(keyframe.truth, proposals.get(key, []), train_iou=settings.train_iou,
                               min_score=settings.min_score)
            sample = dataclasses.replace(sample, keyframe=dataclasses.replace(keyframe, rois=rois))
        kept.append(sample)
    return kept


def _looks_like_ava(source: Path) -> bool:
    """A CSV whose first line has 8 fields: a name, a time, four fractions, two integers."""
    if not source.is_file() or source.suffix.lower() != ".csv":
        return False
    with source.open(encoding="utf-8-sig", errors="replace") as f:
        first = f.readline().strip().split(",")
    if len(first) != 8:
        return False
    try:
        return all(0 <= float(v) <= 1 for v in first[2:6]) and float(first[1]) >= 0 and int(first[6]) >= 1
    except ValueError:
        return False


register_format(AnnotationFormat(
    name="ava",
    read=read_ava,
    detects=_looks_like_ava,
    priority=40,
    class_file=LABEL_MAP_FILE,
    class_file_required=True,
    multi_label=True,
))


def keyframes_of_videos(videos: Sequence[Path], boxes: Path) -> list[Sample]:
    """``vidgrid predict --boxes``: a sample per keyframe of each video (matched by file name without
    extension) with every box of the CSV (proposals layout, any score) to classify, in time order."""
    rows = read_proposals(boxes)
    samples = []
    for video in videos:
        name = video.name[: -len(video.suffix)] if video.suffix else video.name
        times = sorted(time for vid, time in rows if vid == name)
        if not times:
            raise DataError(f"{boxes}: no boxes for video '{name}' ({video})")
        samples += [Sample(video, -1, keyframe=Keyframe(t, (), tuple((box, ()) for box, _ in rows[(name, t)]))) for t in times]
    return samples
