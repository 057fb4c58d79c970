"""Annotation formats: one module per format, each registering itself with :mod:`.registry`.

Every module of this package is imported here, so a new format is one module that calls
:func:`register_format` (its reader, its detector for ``format="auto"``, its defaults) plus its tests.
"""

import importlib
import pkgutil

from vidgrid.data.formats.records import Annotations, Sample, read_class_names
from vidgrid.data.formats.registry import (
    AUTO,
    AnnotationFormat,
    annotation_formats,
    check_format,
    detect_format,
    get_format,
    register_format,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "AUTO", "AnnotationFormat", "Annotations", "Sample", "annotation_formats", "check_format", "detect_format",
    "get_format", "read_class_names", "register_format",
]
