"""Something-Something v2: ``labels.json`` + ``train.json`` / ``validation.json``, videos ``<id>.webm``.

Its labels name directions ("Pushing something from left to right"), so the format says its data
is flip-sensitive: no random horizontal flip unless a ``meta.json`` says otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

from vidgrid.data.formats.records import Sample, load_json
from vidgrid.data.formats.registry import AnnotationFormat, register_format
from vidgrid.errors import DataError


def _ssv2_classes(path: Path) -> dict[str, int]:
    """``labels.json``: template (without brackets) -> class id; ids must be 0..N-1."""
    table = load_json(path)
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


def read_ssv2(path: Path, root: Path, labels_file: Path | None) -> tuple[list[Sample], list[str]]:
    """SSv2 entries ``{"id", "template"}``; videos ``<root>/<id>.webm``; classes from ``labels_file``."""
    if labels_file is None:
        raise DataError(f"{path}: Something-Something v2 needs its labels.json")
    mapping = _ssv2_classes(labels_file)
    entries = load_json(path)
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
    return samples, sorted(mapping, key=mapping.__getitem__)


register_format(AnnotationFormat(
    name="ssv2",
    read=read_ssv2,
    detects=lambda source: source.is_file() and source.suffix.lower() == ".json",
    priority=20,
    class_file="labels.json",
    class_file_required=True,
    meta={"flip_sensitive": True},
))
