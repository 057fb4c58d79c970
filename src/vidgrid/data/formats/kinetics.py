"""Kinetics / PySlowFast lists: one ``path label`` per line, the fallback of ``format="auto"``.

A line may end with four more numbers, ``path label x1 y1 x2 y2``: one box of the main object for the
whole video (:mod:`vidgrid.data.boxes`; a line is read so when its last four tokens are numbers and
what precedes them is a ``path label`` line).
"""

from __future__ import annotations

import re
from pathlib import Path

from vidgrid.data.boxes import WHOLE_VIDEO, check_box
from vidgrid.data.formats.records import Sample, read_class_names, read_text, resolve
from vidgrid.data.formats.registry import AnnotationFormat, register_format
from vidgrid.errors import DataError


_NUMBER = r"-?\d+(?:\.\d*)?"
_BOX_TAIL = re.compile(rf"^(.*\S)[\s,]+({_NUMBER})[\s,]+({_NUMBER})[\s,]+({_NUMBER})[\s,]+({_NUMBER})$")


def _split_box(line: str) -> tuple[str, tuple[str, ...] | None]:
    """``path label x1 y1 x2 y2`` -> (``path label``, the four box tokens); other lines unchanged, None."""
    match = _BOX_TAIL.match(line)
    if match is None or _split_list_line(match[1]) is None:
        return line, None
    return match[1], match.groups()[1:]


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
    rows: list[tuple[Path, int, tuple]] = []
    first = True
    for number, raw in enumerate(read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line, box = _split_box(line)
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
        track = ((WHOLE_VIDEO, *check_box(box, f"{path}: line {number}")),) if box else ()
        rows.append((resolve(video, root), label, track))
    if not rows:
        raise DataError(f"{path}: no samples (expected one 'path label' per line)")
    if names is None:
        names = [str(i) for i in range(max(label for _, label, _ in rows) + 1)]
    return [Sample(p, label, boxes=track) for p, label, track in rows], names


register_format(AnnotationFormat(
    name="kinetics",
    read=read_kinetics,
    detects=lambda source: not source.is_dir(),  # any file no other format claims
    priority=0,
))
