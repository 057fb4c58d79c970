"""Charades v1 CSV (``id``, ``actions``): multi-label clips with per-action times, videos ``<id>.mp4``."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from vidgrid.data.formats.records import Sample, read_class_names, read_text, resolve
from vidgrid.data.formats.registry import AnnotationFormat, register_format
from vidgrid.errors import DataError

CHARADES_CLASSES = 157
"""Action classes of Charades v1 (``c000`` ... ``c156``)."""


def _charades_classes(class_file: Path | None) -> list[str]:
    """Charades class names from ``Charades_v1_classes.txt`` lines ``c000 Holding some clothes``."""
    if class_file is None:
        return [f"c{i:03d}" for i in range(CHARADES_CLASSES)]
    names = read_class_names(class_file)
    return [re.sub(r"^c\d{3}\s+", "", name) for name in names]


def _parse_actions(text: str, num_classes: int, where: str) -> tuple[tuple[int, float, float], ...]:
    """``c092 11.90 21.20;c147 0.00 12.60`` -> ((92, 11.9, 21.2), (147, 0.0, 12.6))."""
    segments = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        match = re.fullmatch(r"c(\d+)\s+(\d+(?:\.\d*)?)\s+(\d+(?:\.\d*)?)", item)
        if match is None:
            raise DataError(f"{where}: expected actions like 'c092 11.90 21.20;c147 0.00 12.60', got '{item}'")
        label = int(match.group(1))
        if label >= num_classes:
            raise DataError(f"{where}: action class c{label:03d} outside the class range c000..c{num_classes - 1:03d}")
        segments.append((label, float(match.group(2)), float(match.group(3))))
    return tuple(segments)


def read_charades(path: Path, root: Path, class_file: Path | None) -> tuple[list[Sample], list[str]]:
    """Charades CSV (``id``, ``actions``): multi-hot clip labels; videos ``<root>/<id>.mp4``."""
    names = _charades_classes(class_file)
    samples = []
    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "id" not in reader.fieldnames or "actions" not in reader.fieldnames:
            raise DataError(f"{path}: line 1: expected a CSV header with 'id' and 'actions' columns")
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if not row.get("id") or row.get("actions") is None:
                raise DataError(f"{where}: expected a video id and an actions column")
            segments = _parse_actions(row["actions"], len(names), where)
            labels = tuple(sorted({label for label, _, _ in segments}))
            samples.append(Sample(resolve(f"{row['id']}.mp4", root), -1, labels, segments))
    if not samples:
        raise DataError(f"{path}: no videos")
    return samples, names


def has_charades_header(source: Path) -> bool:
    """True for a ``.csv`` file whose header names an ``id`` and an ``actions`` column."""
    if not source.is_file() or source.suffix.lower() != ".csv":
        return False
    with open(source, newline="", encoding="utf-8-sig", errors="replace") as f:
        header = f.readline().strip().lower().split(",")
    return "actions" in header and "id" in header


register_format(AnnotationFormat(
    name="charades",
    read=read_charades,
    detects=has_charades_header,
    priority=30,
    multi_label=True,
))
