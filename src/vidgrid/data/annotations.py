"""Annotations: read any registered format (:mod:`vidgrid.data.formats`), write lists back.

Formats: Kinetics/PySlowFast lists, a folder per class, Something-Something v2, Charades; each is a
module of :mod:`vidgrid.data.formats` that registers its reader and its detector. Every load returns
:class:`Annotations`, a list of :class:`Sample` (video path and label, or multi-hot class ids for
multi-label data) plus the class names and the dataset's ``meta.json``. A malformed line raises
:class:`~vidgrid.errors.DataError` naming the file, the line and what was expected; a label outside
the class range is an error, never wrapped around.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

from vidgrid.data.formats import (
    AUTO,
    Annotations,
    Sample,
    annotation_formats,
    check_format,
    detect_format,
    get_format,
    read_class_names,
)
from vidgrid.data.formats.ava import ProposalSettings, apply_proposals
from vidgrid.data.formats.charades import CHARADES_CLASSES
from vidgrid.data.formats.folder import VIDEO_EXTENSIONS
from vidgrid.data.boxes import BoxRow, check_box
from vidgrid.data.formats.records import load_json, read_text, resolve
from vidgrid.errors import DataError

__all__ = [
    "CHARADES_CLASSES", "VIDEO_EXTENSIONS", "Annotations", "Sample", "annotation_formats", "check_format",
    "detect_format", "load_annotations", "read_class_names", "write_annotations",
]


def load_annotations(
    source: str | Path,
    *,
    root: str | Path | None = None,
    format: str = AUTO,
    classes: str | Path | None = None,
    boxes: str | Path | None = None,
    proposals: ProposalSettings | None = None,
) -> Annotations:
    """Read the annotations at ``source`` (a list file, or a folder per class).

    ``root``: folder that relative video paths are resolved against (default: the list's folder).
    ``format``: a registered format (:func:`annotation_formats`) or ``auto``, which asks the formats'
    detectors: a CSV whose header has ``id`` and ``actions`` is Charades, ``.json`` is SSv2, a folder
    is one folder per class, anything else a Kinetics-style list. An unknown name is a one-line
    error naming ``data.format`` and the valid names.
    ``classes``: class-name file (default: the format's own, e.g. ``classes.txt`` beside the list,
    ``labels.json`` for SSv2).
    ``boxes``: a track file (CSV ``path,frame,x1,y1,x2,y2``, :func:`read_box_tracks`,
    paths resolved against ``root``) whose tracks replace the samples' own boxes; videos it does not
    name keep theirs (a list's ``path label x1 y1 x2 y2`` box, or none).
    """
    check_format(format)
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: annotation list or folder not found")
    fmt = get_format(detect_format(source) if format == AUTO else format)
    if fmt.source == "folder" and not source.is_dir():
        raise DataError(f"{source}: is a file, but format '{fmt.name}' needs a folder")
    if fmt.source == "file" and source.is_dir():
        raise DataError(f"{source}: is a folder, but format '{fmt.name}' needs an annotation file")
    base = source if source.is_dir() else source.parent
    data_root = Path(root) if root else base
    class_file = Path(classes) if classes else fmt.default_class_file(base)
    samples, names = fmt.read(source, data_root, class_file)
    if boxes:
        tracks = read_box_tracks(Path(boxes), data_root)
        samples = [dataclasses.replace(s, boxes=tracks[s.path]) if s.path in tracks else s for s in samples]
    if proposals is not None and (proposals.proposals or proposals.exclusions):
        samples = apply_proposals(samples, proposals)
    meta = {**fmt.meta, **_read_meta(base / "meta.json")}
    return Annotations(samples, names, multi_label=fmt.multi_label, meta=meta)


def _read_meta(path: Path) -> dict:
    """The dataset's ``meta.json`` beside the list (e.g. ``{"flip_sensitive": true}``), or ``{}``."""
    if not path.is_file():
        return {}
    meta = load_json(path)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    return meta


# --------------------------------------------------------------------------- writing


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` where it lies inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path.resolve())


def _write_beside(path: Path, text: str, existing_matches: bool) -> None:
    """Write ``text`` to ``path`` unless the file is already there with the same meaning."""
    if not path.is_file():
        path.write_text(text, encoding="utf-8")
    elif not existing_matches:
        raise DataError(f"{path}: already exists with different content; write the list to another folder")


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_annotations(path: str | Path, annotations: Annotations) -> None:
    """Write ``annotations`` so that :func:`load_annotations` reads them back from ``path``.

    Single-label data becomes a Kinetics-style ``path label`` list (comma separated for ``.csv``),
    multi-label data a Charades CSV (``id,actions``). Paths are relative to the list's folder where
    possible. ``classes.txt`` (and ``meta.json`` if any) are written beside the list. The list itself
    is written atomically (temporary file, then rename).
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    if annotations.multi_label:
        rows = [["id", "actions"]]
        for sample in annotations.samples:
            video = _relative(sample.path, folder)
            if not video.endswith(".mp4"):
                raise DataError(f"{sample.path}: a Charades list can only name .mp4 videos")
            rows.append([video[:-4], ";".join(f"c{c:03d} {start:.2f} {end:.2f}" for c, start, end in sample.segments)])
        text = _csv_text(rows)
        # Charades class names are written with their ids so that the reader strips them again
        class_lines = [f"c{i:03d} {name}" for i, name in enumerate(annotations.classes)]
    else:
        separator = "," if path.suffix.lower() == ".csv" else " "
        text = "".join(f"{_relative(s.path, folder)}{separator}{s.label}\n" for s in annotations.samples)
        class_lines = list(annotations.classes)
    classes_file, meta_file = folder / "classes.txt", folder / "meta.json"
    _write_beside(
        classes_file, "".join(f"{line}\n" for line in class_lines),
        classes_file.is_file() and read_class_names(classes_file) == class_lines,
    )
    if annotations.meta:
        _write_beside(meta_file, json.dumps(annotations.meta, indent=2) + "\n", _read_meta(meta_file) == annotations.meta)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_box_tracks(path: Path, root: Path) -> dict[Path, tuple[BoxRow, ...]]:
    """A track file: CSV ``path,frame,x1,y1,x2,y2`` (optional header), paths resolved against ``root``
    as the lists' are; one sorted track per video. A malformed row, a bad box or a frame annotated
    twice is a one-line :class:`DataError` naming the file and line."""
    tracks: dict[Path, dict[int, BoxRow]] = {}
    for number, row in enumerate(csv.reader(read_text(path).splitlines()), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        where = f"{path}: line {number}"
        if len(row) != 6:
            raise DataError(f"{where}: expected 'path,frame,x1,y1,x2,y2', got {len(row)} fields")
        try:
            frame = int(row[1])
            numbers = tuple(float(v) for v in row[2:])
        except ValueError:
            if number == 1 and not tracks:  # a header such as 'path,frame,x1,y1,x2,y2'
                continue
            raise DataError(f"{where}: expected an integer frame and four numbers, got '{','.join(row)}'") from None
        if frame < 0:
            raise DataError(f"{where}: frame {frame} must be >= 0")
        track = tracks.setdefault(resolve(row[0].strip(), root), {})
        if frame in track:
            raise DataError(f"{where}: frame {frame} of {row[0].strip()} is annotated twice")
        track[frame] = (frame, *check_box(numbers, where))
    if not tracks:
        raise DataError(f"{path}: no boxes (expected 'path,frame,x1,y1,x2,y2' lines)")
    return {video: tuple(rows[f] for f in sorted(rows)) for video, rows in tracks.items()}
