"""``vidgrid synth --boxes``: the main object's track, exact on hand-made shapes, on the rendered
object in every frame, and readable as a ``data.boxes`` track file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidgrid.cli import main
from vidgrid.data.annotations import load_annotations
from vidgrid.data.synthetic_classes import object_boxes, render_video, render_video_and_track, shape_distance


def test_object_boxes_bound_the_pixels_inside_the_shape():
    yy, xx = np.mgrid[0:20, 0:24].astype(np.float64)
    # a square of half-side 2.5 at (10, 8): pixel centres 8..12 and 6..10 are inside -> edges 8..13, 6..11
    square = np.maximum(np.abs(xx - 10), np.abs(yy - 8)) - 2.5
    disc = shape_distance("disc", xx - 3, yy - 15, np.array(1.6))  # pixels 2..4 x 14..16 (and the 4-neighbours)
    boxes = object_boxes(np.stack([square, disc]))
    assert boxes.tolist() == [[8, 6, 13, 11], [2, 14, 5, 17]]


@pytest.mark.parametrize("label", ["slide_right", "slide_up", "grow", "rotate_cw", "blink"])
def test_the_track_follows_the_rendered_object(label: str):
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    video, boxes = render_video_and_track(label, rng(), frames=12, width=48, height=40, distractors=0)
    assert np.array_equal(video, render_video(label, rng(), frames=12, width=48, height=40, distractors=0))
    assert boxes.shape == (12, 4) and (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= 48).all() and (boxes[:, [1, 3]] <= 40).all()
    for frame, (x1, y1, x2, y2) in zip(video.astype(np.int16), boxes.astype(int)):
        brightness = frame.max(axis=2)  # the object is bright (200-255), the background dark (< 140)
        if brightness.max() < 190:  # blinked off: no pixels to check
            continue
        ys, xs = np.nonzero(brightness >= 190)
        assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2
        assert xs.min() - x1 <= 1 and x2 - 1 - xs.max() <= 1  # tight: the box is no wider than the object
    if label == "slide_right":
        assert (np.diff(boxes[:, 0]) >= 0).all() and boxes[-1, 0] > boxes[0, 0] + 3
    if label == "slide_up":
        assert (np.diff(boxes[:, 1]) <= 0).all() and boxes[-1, 1] < boxes[0, 1] - 3
    if label == "grow":
        assert boxes[-1, 2] - boxes[-1, 0] > boxes[0, 2] - boxes[0, 0]


def test_synth_boxes_writes_a_track_file_the_lists_read(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "synth"
    assert main(["synth", str(out), "--classes", "slide_left,grow", "--size", "32", "--train-per-class", "2",
                 "--val-per-class", "1", "--frames", "8", "--boxes", "--workers", "1"]) == 0
    assert f"data.boxes={out / 'boxes.csv'}" in capsys.readouterr().out
    lines = (out / "boxes.csv").read_text().splitlines()
    assert lines[0] == "path,frame,x1,y1,x2,y2" and len(lines) == 1 + 6 * 8
    for split, count in (("train", 4), ("val", 2)):
        samples = load_annotations(out / f"{split}.csv", boxes=out / "boxes.csv").samples
        assert len(samples) == count
        assert all([row[0] for row in s.boxes] == list(range(8)) for s in samples)
    slide = load_annotations(out / "train.csv", boxes=out / "boxes.csv").samples[0]
    assert slide.path.name == "slide_left_000.mp4" and slide.boxes[-1][1] < slide.boxes[0][1]  # moves left
    assert not (tmp_path / "plain").exists()
    assert main(["synth", str(tmp_path / "plain"), "--classes", "slide_left,grow", "--size", "16", "--train-per-class", "1",
                 "--val-per-class", "1", "--frames", "8", "--workers", "1"]) == 0
    assert not (tmp_path / "plain" / "boxes.csv").exists()
