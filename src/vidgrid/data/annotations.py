"""Annotation readers: Kinetics/PySlowFast lists, folder per class, Something-Something v2, Charades.

Every reader returns :class:`Annotations`, a list of :class:`Sample` (video path and label, or
multi-hot class ids for multi-label data) plus the class names and the dataset's ``meta.json``.
A malformed line raises :class:`~vidgrid.errors.DataError` naming the file, the line and what was
expected; a label outside the class range is an error, never wrapped around.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vidgrid.errors import DataError

Format = Literal["auto", "kinetics", "folder", "ssv2", "charades"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp", ".wmv"})
"""File extensions a folder-per-class dataset counts as videos."""
CHARADES_CLASSES = 157
"""Action classes of Charades v1 (``c000`` ... ``c156``)."""


@dataclass(frozen=True)
class Sample:
    """One video: ``label`` >= 0 for single-label data; multi-label data has ``label`` -1 and ``labels``.

    ``segments`` keeps per-action ``(class, start_s, end_s)`` times where the format has them (Charades).
    """

    path: Path
    label: int
    labels: tuple[int, ...] = ()
    segments: tuple = ()


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


FORMAT_META: dict[str, dict] = {"ssv2": {"flip_sensitive": True}}
"""What a format itself says about its data (a ``meta.json`` beside the list overrides it):
Something-Something's labels name directions ("from left to right"), so no random flip."""


def load_annotations(
    source: str | Path,
    *,
    root: str | Path | None = None,
    format: Format = "auto",
    classes: str | Path | None = None,
) -> Annotations:
    """Read the annotations at ``source`` (a list file, or a folder per class).

    ``root``: folder that relative video paths are resolved against (default: the list's folder).
    ``format="auto"`` decides from the source: a folder is one folder per class, ``.json`` is SSv2, a
    CSV whose header has an ``actions`` column is Charades, anything else a Kinetics-style list.
    ``classes``: class-name file (default: ``classes.txt`` beside the list, ``labels.json`` for SSv2).
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: annotation list or folder not found")
    fmt = detect_format(source) if format == "auto" else format
    base = source if source.is_dir() else source.parent
    data_root = Path(root) if root else base
    class_file = Path(classes) if classes else None
    if fmt == "folder":
        if not source.is_dir():
            raise DataError(f"{source}: format 'folder' needs a folder with one subfolder per class")
        annotations = _read_folder(source)
    elif source.is_dir():
        raise DataError(f"{source}: is a folder, but format '{fmt}' needs an annotation file")
    elif fmt == "kinetics":
        annotations = _read_kinetics(source, data_root, class_file or _optional(base / "classes.txt"))
    elif fmt == "ssv2":
        annotations = _read_ssv2(source, data_root, class_file or base / "labels.json")
    elif fmt == "charades":
        annotations = _read_charades(source, data_root, class_file or _optional(base / "classes.txt"))
    else:
        raise DataError(f"{source}: unknown annotation format '{fmt}' (expected auto, kinetics, folder, ssv2 or charades)")
    annotations.meta = {**FORMAT_META.get(fmt, {}), **_read_meta(base / "meta.json")}
    return annotations


def detect_format(source: Path) -> Format:
    """The annotation format of ``source``, from its type, extension and (for CSV) its header."""
    if source.is_dir():
        return "folder"
    if source.suffix.lower() == ".json":
        return "ssv2"
    if source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8-sig", errors="replace") as f:
            header = f.readline().strip().lower().split(",")
        if "actions" in header and "id" in header:
            return "charades"
    return "kinetics"


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def _read_text(path: Path) -> str:
    """A UTF-8 text file's content without a byte-order mark (spreadsheet exports start with one, which
    would glue itself to the first path); other encodings are a :class:`DataError`."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: expected UTF-8 text ({e.reason})") from None


def _resolve(path: str, root: Path) -> Path:
    """A video path from a list: absolute as written, else relative to the data root."""
    p = Path(path)
    return p if p.is_absolute() else root / p


def read_class_names(path: Path) -> list[str]:
    """Class names, one per line (blank lines ignored); duplicates are an error."""
    if not path.is_file():
        raise DataError(f"{path}: class-name file not found")
    names = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
    if not names:
        raise DataError(f"{path}: no class names (expected one name per line)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: class name '{duplicates[0]}' appears more than once")
    return names


def _read_meta(path: Path) -> dict:
    """The dataset's ``meta.json`` beside the list (e.g. ``{"flip_sensitive": true}``), or ``{}``."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object")
    return meta


# --------------------------------------------------------------------------- Kinetics / PySlowFast


def _split_list_line(line: str) -> tuple[str, str] | None:
    """``path label`` split at the last comma if what follows is one token, else at the last run of
    spaces (so paths may hold spaces or commas)."""
    head, comma, tail = line.rpartition(",")
    parts = [head, tail] if comma and tail.strip() and len(tail.split()) == 1 else line.rsplit(None, 1)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        return None
    return parts[0].strip(), parts[1].strip()


def _read_kinetics(path: Path, root: Path, class_file: Path | None) -> Annotations:
    """One ``path label`` per line (space or comma separated, optional header); label = class id or name."""
    names = read_class_names(class_file) if class_file else None
    by_name = {name: i for i, name in enumerate(names or [])}
    rows: list[tuple[Path, int]] = []
    first = True
    for number, raw in enumerate(_read_text(path).splitlines(), 1):
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
        rows.append((_resolve(video, root), label))
    if not rows:
        raise DataError(f"{path}: no samples (expected one 'path label' per line)")
    if names is None:
        names = [str(i) for i in range(max(label for _, label in rows) + 1)]
    return Annotations([Sample(p, label) for p, label in rows], names, multi_label=False)


# --------------------------------------------------------------------------- folder per class


def _read_folder(root: Path) -> Annotations:
    """``root/<class name>/<video>``: classes sorted by name, videos by file extension."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class folders (expected root/<class name>/<video>)")
    samples = [
        Sample(video, label)
        for label, folder in enumerate(class_dirs)
        for video in sorted(folder.iterdir())
        if video.is_file() and video.suffix.lower() in VIDEO_EXTENSIONS
    ]
    if not samples:
        raise DataError(f"{root}: no videos in the class folders (extensions {', '.join(sorted(VIDEO_EXTENSIONS))})")
    return Annotations(samples, [p.name for p in class_dirs], multi_label=False)


# --------------------------------------------------------------------------- Something-Something v2


def _load_json(path: Path) -> object:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def _ssv2_classes(path: Path) -> dict[str, int]:
    """``labels.json``: template (without brackets) -> class id; ids must be 0..N-1."""
    table = _load_json(path)
    if not isinstance(table, dict) or not table:
        raise DataError(f"{path}: expected a JSON object mapping each template to its class id")
    mapping: dict[str, int] = {}
    for template, value in table.items():
        if not re.fullmatch(r"\d+", str(value)):
            raise DataError(f"{path}: template '{template}': expected an integer class id, got {value!r}")
        mapping[template] = int(value)
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise DataError(f"{path}: class ids must be 0..{len(mapping) - 1}, each once")
    return mapping


def _read_ssv2(path: Path, root: Path, labels_file: Path) -> Annotations:
    """SSv2 ``train.json`` / ``validation.json`` entries ``{"id", "template"}``; videos ``<root>/<id>.webm``."""
    mapping = _ssv2_classes(labels_file)
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of {{'id', 'template'}} entries")
    samples = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise DataError(f"{path}: entry {number}: expected an object with 'id' and 'template'")
        template = str(entry["template"]).replace("[", "").replace("]", "")
        if template not in mapping:
            raise DataError(f"{path}: entry {number}: template '{template}' is not in {labels_file}")
        samples.append(Sample(root / f"{entry['id']}.webm", mapping[template]))
    if not samples:
        raise DataError(f"{path}: no entries")
    names = sorted(mapping, key=mapping.__getitem__)
    return Annotations(samples, names, multi_label=False)


# --------------------------------------------------------------------------- Charades


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


def _read_charades(path: Path, root: Path, class_file: Path | None) -> Annotations:
    """Charades CSV (``id``, ``actions``): multi-hot clip labels; videos ``<root>/<id>.mp4``."""
    names = _charades_classes(class_file)
    samples = []
    with io.StringIO(_read_text(path), newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "id" not in reader.fieldnames or "actions" not in reader.fieldnames:
            raise DataError(f"{path}: line 1: expected a CSV header with 'id' and 'actions' columns")
        for row in reader:
            where = f"{path}: line {reader.line_num}"
            if not row.get("id") or row.get("actions") is None:
                raise DataError(f"{where}: expected a video id and an actions column")
            segments = _parse_actions(row["actions"], len(names), where)
            labels = tuple(sorted({label for label, _, _ in segments}))
            samples.append(Sample(_resolve(f"{row['id']}.mp4", root), -1, labels, segments))
    if not samples:
        raise DataError(f"{path}: no videos")
    return Annotations(samples, names, multi_label=True)


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
