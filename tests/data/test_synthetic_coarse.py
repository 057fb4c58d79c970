"""Coarse synthetic classes that merge fine ones (a second dataset overlapping the first)."""

from __future__ import annotations

import pytest

from vidgrid.data.synthetic import coarse_flip_sensitive
from vidgrid.data.synthetic_classes import resolve_coarse
from vidgrid.errors import VidgridError


def test_coarse_presets_and_specs_resolve_to_groups_of_fine_classes():
    assert resolve_coarse("demo")["horizontal"] == ("slide_left", "slide_right")
    assert resolve_coarse("a=grow+shrink,b=blink") == {"a": ("grow", "shrink"), "b": ("blink",)}


@pytest.mark.parametrize("spec, message", [
    ("a=grow+nope,b=blink", "unknown class 'nope'"),
    ("a=grow,a=blink", "repeats a name"),
    ("a=grow,b=grow", "each fine class may be in one coarse class"),
    ("a=grow+shrink", "2 or more are needed"),
    ("grow", r"is not .coarse=fine\+fine."),
])
def test_bad_coarse_specs_are_one_line_errors(spec, message):
    with pytest.raises(VidgridError, match=message):
        resolve_coarse(spec)


def test_a_flip_moves_a_video_between_coarse_classes_only_when_mirror_classes_are_split():
    assert not coarse_flip_sensitive({"horizontal": ("slide_left", "slide_right"), "size": ("grow",)})
    assert coarse_flip_sensitive({"left": ("slide_left",), "right": ("slide_right",)})
