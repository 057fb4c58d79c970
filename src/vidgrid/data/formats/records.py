"""What every annotation reader returns and reads with: samples, class-name files, UTF-8 text.

A malformed file raises :class:`~vidgrid.errors.DataError` naming the file, the line and what was
expected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vidgrid.errors import DataError


@dataclass(frozen=True)
class Sample:
    """One video: ``label`` >= 0 for single-label data; multi-label data has ``label`` -1 and ``labels``.

    ``segments`` keeps per-action ``(class, start_s, end_s)`` times where the format has them (Charades);
    ``boxes`` the main object's track ``((frame, x1, y1, x2, y2), ...)`` where the annotations give one
    (:mod:`vidgrid.data.boxes`; frame -1: one box for the whole video); ``keyframe`` the time and the
    boxes of one annotated frame (spatio-temporal detection: one sample per keyframe).
    """

    path: Path
    label: int
    labels: tuple[int, ...] = ()
    segments: tuple = ()
    boxes: tuple = ()
    keyframe: Keyframe | None = None


NormBox = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` in fractions of the frame's width and height (the AVA convention)."""


@dataclass(frozen=True)
class Keyframe:
    """One annotated frame of a video: the clip is centred on ``time_s``.

    ``truth``: the annotated boxes and their classes (what evaluation matches against); ``rois``:
    the boxes the model classifies and their classes (training: the annotated boxes and the proposals
    that overlap one; testing: the confident proposals, classes unknown, ``()``)."""

    time_s: float
    truth: tuple[tuple[NormBox, tuple[int, ...]], ...] = ()
    rois: tuple[tuple[NormBox, tuple[int, ...]], ...] = ()


@dataclass
class Annotations:
    """The samples of one split, the class names, and the dataset's ``meta.json`` (``{}`` if absent)."""

    samples: list[Sample]
    classes: list[str]
    multi_label: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def read_text(path: Path) -> str:
    """A UTF-8 text file's content without a byte-order mark (spreadsheet exports start with one, which
    would glue itself to the first path); other encodings are a :class:`DataError`."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: expected UTF-8 text ({e.reason})") from None


def load_json(path: Path) -> object:
    """A JSON file's content; a missing file or invalid JSON is a :class:`DataError` naming the line."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def resolve(path: str, root: Path) -> Path:
    """A video path from a list: absolute as written, else relative to the data root."""
    p = Path(path)
    return p if p.is_absolute() else root / p


def read_class_names(path: Path) -> list[str]:
    """Class names, one per line (blank lines ignored); duplicates are an error."""
    if not path.is_file():
        raise DataError(f"{path}: class-name file not found")
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: no class names (expected one name per line)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: class name '{duplicates[0]}' appears more than once")
    return names
