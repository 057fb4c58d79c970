"""Kinetics / PySlowFast lists: one ``path label`` per line, the fallback of ``format="auto"``."""

from __future__ import annotations

import re
from pathlib import Path

from vidgrid.data.formats.records import Sample, read_class_names, read_text, resolve
from vidgrid.data.formats.registry import AnnotationFormat, register_format
from vidgrid.errors import DataError


def _split_list_line(line: str) -> tuple[str, str] | None:
    """``path label`` split at the last comma if what follows is one token, else at the last run of
    spaces (so paths may hold spaces or commas)."""
    head, comma, tail = line.rpartition(",")
    parts = [head, tail] if comma and tail.strip() and len(tail.split()) == 1 else line.rsplit(None, 1)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        return None
    return parts[0].strip(), parts[1].strip()


def read_kinetics(path: Path, root: Path, class_file: Path | None) -> tuple[list[Sample], list[str]]:
    """One ``path label`` per line (space or comma separated, optional header); label = class id or name.

    Without a class-name file the classes are ``"0"`` ... up to the largest label.
    """
    names = read_class_names(class_file) if class_file else None
    by_name = {name: i for i, name in enumerate(names or [])}
    rows: list[tuple[Path, int]] = []
    first = True
    for number, raw in enumerate(read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = _split_list_line(line)
        if parts is None:
            raise DataError(f"{path}: line {number}: expected 'path label' (space or comma separated), got '{line}'")
        video, token = parts
        if re.fullmatch(r"-?\d+", token):
            label = int(token)
        elif token in by_name:
            label = by_name[token]
        elif first:  # a header line such as 'path label' or 'video,label'
            first = False
            continue
        else:
            raise DataError(f"{path}: line {number}: expected an integer label or a class name, got '{token}'")
        first = False
        if label < 0 or (names is not None and label >= len(names)):
            limit = f"0..{len(names) - 1} ({class_file})" if names is not None else ">= 0"
            raise DataError(f"{path}: line {number}: label {label} outside the class range {limit}")
        rows.append((resolve(video, root), label))
    if not rows:
        raise DataError(f"{path}: no samples (expected one 'path label' per line)")
    if names is None:
        names = [str(i) for i in range(max(label for _, label in rows) + 1)]
    return [Sample(p, label) for p, label in rows], names


register_format(AnnotationFormat(
    name="kinetics",
    read=read_kinetics,
    detects=lambda source: not source.is_dir(),  # any file no other format claims
    priority=0,
))
