"""A folder per class: ``root/<class name>/<video>``."""

from __future__ import annotations

from pathlib import Path

from vidgrid.data.formats.records import Sample
from vidgrid.data.formats.registry import AnnotationFormat, register_format
from vidgrid.errors import DataError

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp", ".wmv"})
"""File extensions a folder-per-class dataset counts as videos."""


def read_folder(root: Path, data_root: Path, class_file: Path | None) -> tuple[list[Sample], list[str]]:
    """``root/<class name>/<video>``: classes sorted by name, videos by file extension; the folder
    names are the classes and the videos lie in them, so ``data_root`` and ``class_file`` are unused."""
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
    return samples, [p.name for p in class_dirs]


register_format(AnnotationFormat(
    name="folder",
    read=read_folder,
    detects=Path.is_dir,
    priority=10,
    source="folder",
    class_file=None,
))
