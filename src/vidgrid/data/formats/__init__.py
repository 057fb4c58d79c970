"""Annotation formats: one module per format, each registering itself with :mod:`.registry`.

A new format is one module that calls :func:`register_format` (its reader, its detector for
``format="auto"``, its defaults), its import below, and its tests.
"""

from vidgrid.data.formats.records import Annotations, Keyframe, Sample, read_class_names
from vidgrid.data.formats.registry import (
    AUTO,
    AnnotationFormat,
    annotation_formats,
    check_format,
    detect_format,
    get_format,
    register_format,
)

from vidgrid.data.formats import ava, charades, folder, kinetics, ssv2  # noqa: F401,E402  (register the formats)

__all__ = [
    "AUTO", "AnnotationFormat", "Annotations", "Keyframe", "Sample", "annotation_formats", "check_format", "detect_format",
    "get_format", "read_class_names", "register_format",
]
