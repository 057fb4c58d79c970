"""The annotation-format registry: each format registers its reader and a detector for ``auto``.

A format is data (:class:`AnnotationFormat`): how to read it, how to recognise it, which class-name
file it takes by default, whether it reads a file or a folder, what it says about its data
(``meta``), and whether its samples are multi-label. ``format="auto"`` asks the detectors from the
highest ``priority`` down; the first that recognises the source names its format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from vidgrid.data.formats.records import Sample
from vidgrid.errors import ConfigError, DataError
from vidgrid.registry import Registry

AUTO = "auto"
"""The ``format`` value that lets the detectors decide."""

Reader = Callable[[Path, Path, Path | None], tuple[list[Sample], list[str]]]
"""``read(source, root, class_file) -> (samples, class names)``; ``root``: the folder relative video
paths are resolved against; ``class_file``: the class-name file, or None for the format's own names."""


class UnknownFormatError(ConfigError, DataError):
    """A format name that no format registered: a bad config value (``data.format``) that is found
    where the annotations are read, so it is both a :class:`ConfigError` and a :class:`DataError`."""


@dataclass(frozen=True)
class AnnotationFormat:
    """One annotation format: its reader, its detector and what it implies about the data."""

    name: str
    """The ``data.format`` value that selects it."""
    read: Reader
    """Reads the samples and the class names (see :data:`Reader`)."""
    detects: Callable[[Path], bool]
    """True if an existing ``source`` looks like this format (asked by ``format="auto"``)."""
    priority: int
    """Detectors are asked from the highest priority down; the fallback has the lowest."""
    source: Literal["file", "folder"] = "file"
    """Whether the format reads an annotation file or a folder."""
    class_file: str | None = "classes.txt"
    """Default class-name file beside the source; None: the format needs none."""
    class_file_required: bool = False
    """True if the default class file must exist (else the format names the classes itself)."""
    meta: dict = field(default_factory=dict)
    """What the format says about its data; a ``meta.json`` beside the list overrides it."""
    multi_label: bool = False
    """True if samples carry several labels (``Sample.labels``) instead of one ``Sample.label``."""

    def default_class_file(self, folder: Path) -> Path | None:
        """The class-name file beside the source in ``folder``, or None if there is none to read."""
        if self.class_file is None:
            return None
        path = folder / self.class_file
        return path if self.class_file_required or path.is_file() else None


FORMATS: Registry[AnnotationFormat] = Registry(
    "annotation format",
    lambda name, valid: UnknownFormatError(
        f"'data.format' = {name!r}: unknown annotation format, expected one of {', '.join([AUTO, *valid])}"
    ),
)


def register_format(fmt: AnnotationFormat) -> AnnotationFormat:
    """Add ``fmt`` to the registry; a second format of the same name is a programming error."""
    if fmt.name == AUTO:
        raise ValueError(f"{AUTO!r} is not a format name: it lets the detectors decide")
    return FORMATS.register(fmt.name, fmt)


def annotation_formats() -> list[str]:
    """Names of the registered formats, sorted (``auto`` is not one of them)."""
    return FORMATS.names()


def check_format(name: str) -> None:
    """Raise a one-line error naming ``data.format`` unless ``name`` is ``auto`` or a registered format."""
    if name != AUTO:
        FORMATS.lookup(name)


def get_format(name: str) -> AnnotationFormat:
    """The registered format called ``name`` (not ``auto``: resolve that with :func:`detect_format`)."""
    return FORMATS.lookup(name)


def detect_format(source: Path) -> str:
    """The name of the format whose detector, asked from the highest priority down, recognises ``source``."""
    for fmt in sorted(FORMATS.values(), key=lambda f: (-f.priority, f.name)):
        if fmt.detects(source):
            return fmt.name
    valid = ", ".join(annotation_formats())
    raise DataError(f"{source}: cannot tell the annotation format; set 'data.format' to one of {valid}")
