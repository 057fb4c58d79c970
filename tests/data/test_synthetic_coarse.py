"""Second synthetic datasets overlapping a first: coarse classes that merge fine ones, or the same
classes in another style."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidgrid.data.decode import decode_frames
from vidgrid.data.synthetic import CORRESPONDENCE_FILE, coarse_flip_sensitive, write_synthetic_dataset
from vidgrid.data.synthetic_classes import STYLES, render_video_and_track, resolve_coarse
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


def test_other_styles_render_the_same_scene_in_another_look_and_state_the_same_classes(tmp_path):
    def render(style):
        return render_video_and_track("still_disc", np.random.default_rng(3), frames=8, width=64, height=64, distractors=0,
                                      style=style)

    (plain, boxes), (negative, negative_boxes), (soft, soft_boxes) = (render(style) for style in STYLES)
    np.testing.assert_array_equal(negative, 255 - plain)
    np.testing.assert_array_equal(negative_boxes, boxes)
    np.testing.assert_array_equal(soft_boxes, boxes)
    # soft: the same disc with its edge blurred: pixels change only in a band around the outline
    x1, y1, x2, y2 = boxes[0]
    cx, cy, radius = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    from_centre = np.hypot(xx - cx, yy - cy)
    changed = np.abs(soft[0].astype(int) - plain[0].astype(int)).max(-1) > 16
    assert changed.sum() > 2 * np.pi * radius  # a band at least a pixel wide all round
    assert np.all(np.abs(from_centre[changed] - radius) < 3)

    classes = "still_disc,grow"
    for style in ("plain", "negative"):
        write_synthetic_dataset(tmp_path / style, classes=classes, style=style, train_per_class=1, val_per_class=1,
                                frames=8, width=32, height=32, distractors=0, workers=1)
    assert not (tmp_path / "plain" / CORRESPONDENCE_FILE).exists()
    correspondence = json.loads((tmp_path / "negative" / CORRESPONDENCE_FILE).read_text())
    assert correspondence == {"relation": "restyled", "style": "negative", "classes": {"still_disc": "still_disc", "grow": "grow"}}
    assert json.loads((tmp_path / "negative" / "meta.json").read_text())["style"] == "negative"
    # the negative set's videos are drawn on streams of their own: none is a plain video negated
    bright_first = decode_frames(tmp_path / "plain" / "train" / "grow" / "grow_000.mp4", [0]).numpy()
    negative_first = decode_frames(tmp_path / "negative" / "train" / "grow" / "grow_000.mp4", [0]).numpy()
    assert negative_first.mean() > 128 > bright_first.mean()  # a light background against a dark one
    assert np.abs((255 - negative_first).astype(float) - bright_first).mean() > 10


def test_an_unknown_style_is_a_one_line_error(tmp_path):
    with pytest.raises(VidgridError, match=r"--style 'sepia': expected one of plain, negative, soft"):
        write_synthetic_dataset(tmp_path, style="sepia", workers=1)
