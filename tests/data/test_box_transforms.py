"""Boxes: tracks, interpolation, and boxes carried through every spatial transform (hand-computed),
then through the datasets onto a white rectangle in real decoded clips."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from vidgrid.data import transforms
from vidgrid.data.annotations import Annotations, Sample, load_annotations
from vidgrid.data.boxes import WHOLE_VIDEO, ClipView, box_at, check_box, crop_view, view_box
from vidgrid.data.dataset import VideoClipDataset, VideoTestDataset
from vidgrid.data.encode import write_video
from vidgrid.errors import DataError
from vidgrid.types import ClipShape


def approx(box):
    return pytest.approx(box, abs=1e-9)


def test_short_side_rescale_then_random_crop():
    # a 64 px source square (top 10, left 20) becomes the 32 px crop: scale 1/2, offset (20, 10)
    view = crop_view(0, (10, 20, 64, 64), (32, 32))
    assert view_box((30, 20, 62, 50), view) == (approx((5, 5, 21, 20)), True)


def test_random_resized_crop_scales_each_axis():
    # an 80 x 40 source box (top 0, left 40) resized to 32 x 32: x by 0.4, y by 0.8
    view = crop_view(0, (0, 40, 40, 80), (32, 32))
    assert view_box((50, 10, 90, 30), view) == (approx((4, 8, 20, 24)), True)


def test_flip_mirrors_x_inside_the_crop():
    view = crop_view(0, (10, 20, 64, 64), (32, 32), flip=True)
    assert view_box((30, 20, 62, 50), view) == (approx((32 - 21, 5, 32 - 5, 20)), True)


@pytest.mark.parametrize("crop", [16, 22, 32])
def test_multigrid_crop_sizes_scale_the_box_with_the_crop(crop):
    view = crop_view(0, (10, 20, 64, 64), (crop, crop))
    box, visible = view_box((30, 20, 62, 50), view)
    assert visible and box == approx(tuple(v * crop / 32 for v in (5, 5, 21, 20)))


def test_three_test_crops_of_a_resized_frame():
    # 60 x 120 source, short side 30 (scale 1/2), 3 crops of 30 along the width at x = 0, 15, 30
    crops = transforms.eval_crop_boxes(30, 60, 30, 3)
    assert crops == [(0, 0, 30, 30), (0, 15, 30, 30), (0, 30, 30, 30)]
    views = [crop_view(0, c, (30, 30), scale=(0.5, 0.5)) for c in crops]
    # the source box (40, 10, 80, 50) is (20, 5, 40, 25) in the resized frame
    assert [view_box((40, 10, 80, 50), v) for v in views] == [
        (approx((20, 5, 30, 25)), True),  # cut at the right edge of the left crop
        (approx((5, 5, 25, 25)), True),
        (approx((0, 5, 10, 25)), True),  # cut at the left edge of the right crop
    ]


def test_a_box_outside_the_crop_is_clipped_and_flagged_not_visible():
    view = crop_view(0, (0, 0, 32, 32), (32, 32))
    box, visible = view_box((40, 0, 50, 10), view)
    assert not visible and box == (32, 0, 32, 10) and all(math.isfinite(v) for v in box)
    box, visible = view_box((10, 32, 20, 40), crop_view(0, (0, 0, 32, 32), (16, 16), flip=True))
    assert not visible and box == (6, 16, 11, 16)


def test_track_interpolates_linearly_and_holds_at_the_ends():
    track = ((10, 0, 0, 10, 10), (20, 10, 20, 30, 40))
    assert box_at(track, 15) == approx((5, 10, 20, 25))
    assert box_at(track, 0) == (0, 0, 10, 10)
    assert box_at(track, 99) == (10, 20, 30, 40)
    assert box_at(((WHOLE_VIDEO, 1, 2, 3, 4),), 57) == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("box", "message"),
    [((5, 0, 5, 4), "x2 > x1"), ((0, 4, 3, 2), "y2 > y1"), ((-1, 0, 3, 3), "non-negative"), ((0, 0, 70, 4), "beyond")],
)
def test_bad_boxes_are_one_line_errors(box, message):
    with pytest.raises(DataError, match=message):
        check_box(box, "list.txt: line 3", frame_size=(48, 64))


def test_list_lines_with_a_box_and_track_files(tmp_path: Path):
    (tmp_path / "classes.txt").write_text("a\nb\n")
    listing = tmp_path / "train.txt"
    listing.write_text("v0.mp4 0 1 2 30 40\nv1.mp4 1\nv2.mp4 1 0.5 0 8 9.5\n")
    samples = load_annotations(listing).samples
    assert samples[0].boxes == ((WHOLE_VIDEO, 1.0, 2.0, 30.0, 40.0),)
    assert samples[1].boxes == ()
    assert samples[2].boxes == ((WHOLE_VIDEO, 0.5, 0.0, 8.0, 9.5),)
    tracks = tmp_path / "boxes.csv"
    tracks.write_text("path,frame,x1,y1,x2,y2\nv1.mp4,20,10,20,30,40\nv1.mp4,10,0,0,10,10\nother.mp4,0,0,0,1,1\n")
    samples = load_annotations(listing, boxes=tracks).samples
    assert samples[1].boxes == ((10, 0, 0, 10, 10), (20, 10, 20, 30, 40))  # sorted by frame
    assert samples[0].boxes == ((WHOLE_VIDEO, 1.0, 2.0, 30.0, 40.0),)  # not in the track file: its own


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v.mp4,0,0,0,5\n", "expected 'path,frame,x1,y1,x2,y2'"),
        ("v.mp4,0,0,0,5,5\nv.mp4,x,0,0,5,5\n", "line 2: expected an integer frame"),
        ("v.mp4,0,5,0,5,5\n", "line 1: box .* x2 > x1"),
        ("v.mp4,3,0,0,5,5\nv.mp4,3,0,0,6,6\n", "frame 3 of v.mp4 is annotated twice"),
        ("v.mp4,-2,0,0,5,5\n", "frame -2 must be >= 0"),
    ],
)
def test_bad_track_files(tmp_path: Path, text: str, message: str):
    (tmp_path / "train.txt").write_text("v.mp4 0\n")
    (tmp_path / "boxes.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_annotations(tmp_path / "train.txt", boxes=tmp_path / "boxes.csv")


def test_bad_box_on_a_list_line(tmp_path: Path):
    (tmp_path / "train.txt").write_text("v.mp4 0 1 2 30 40\nv.mp4 0 9 2 3 40\n")
    with pytest.raises(DataError, match=r"train.txt: line 2: box .* x2 > x1"):
        load_annotations(tmp_path / "train.txt")


# ---------------------------------------------------------------------------------------------------
# through the datasets: the box must land on the white rectangle of the decoded clip

SOURCE_BOX = (14, 16, 46, 40)
"""A white rectangle on black in every frame of a 48 x 80 video (x1, y1, x2, y2), off-centre so a flip moves it."""


@pytest.fixture
def rectangle_video(tmp_path: Path) -> Path:
    frames = np.zeros((16, 48, 80, 3), np.uint8)
    x1, y1, x2, y2 = SOURCE_BOX
    frames[:, y1:y2, x1:x2] = 255
    path = tmp_path / "rect.mp4"
    write_video(path, frames, 25, crf=0)
    return path


def mapped_boxes(sample: Sample, views: Sequence[ClipView]) -> torch.Tensor:
    """(V, 5) boxes at each view's centre frame in clip pixels, plus visibility."""
    rows = [(*box, float(visible)) for box, visible in (view_box(box_at(sample.boxes, v.frame), v) for v in views)]
    return torch.tensor(rows, dtype=torch.float64)


def bright_box(frame: torch.Tensor) -> tuple[float, float, float, float]:
    """Bounding box of the pixels brighter than mid-grey in a uint8 (3, H, W) frame (continuous edges)."""
    ys, xs = torch.nonzero(frame.float().mean(0) > 127, as_tuple=True)
    return float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1


def annotations(path: Path) -> Annotations:
    return Annotations([Sample(path, 0, boxes=((WHOLE_VIDEO, *SOURCE_BOX),))], ["a"])


@pytest.mark.parametrize("spatial", ["rescale_crop", "resized_crop"])
@pytest.mark.parametrize("shape", [ClipShape(4, 32), ClipShape(2, 22)])
def test_training_clips_carry_the_box(rectangle_video: Path, spatial: str, shape: ClipShape):
    data = VideoClipDataset(annotations(rectangle_video), target=mapped_boxes, base_frames=4, sampling_rate=2, base_crop=32,
                            min_short=32, max_short=48, spatial_sampling=spatial, flip=True)
    checked = 0
    for epoch in range(12):
        data.set_epoch(epoch)
        clip, target, _ = data[(0, shape)]
        *box, visible = target[0].tolist()
        if not visible or (box[2] - box[0]) < 3 or (box[3] - box[1]) < 3:
            continue
        assert bright_box(clip[:, 0]) == pytest.approx(box, abs=1.01)
        checked += 1
    assert checked >= 4


def test_test_views_carry_the_box(rectangle_video: Path):
    data = VideoTestDataset(annotations(rectangle_video), target=mapped_boxes, frames=4, sampling_rate=2, clips=2,
                            crops=3, short_side=30, crop=30)
    views, target, index = data[0]
    assert index == 0 and target.shape == (6, 5)
    for view, (*box, visible) in zip(views, target.tolist()):
        assert visible
        assert bright_box(view[:, 0]) == pytest.approx(box, abs=1.01)


def test_a_box_beyond_the_decoded_frame_is_a_one_line_error(rectangle_video: Path):
    def checked(sample: Sample, views: Sequence[ClipView]) -> torch.Tensor:
        return torch.tensor([check_box(box_at(sample.boxes, v.frame), str(sample.path), v.frame_size) for v in views])

    wide = Annotations([Sample(rectangle_video, 0, boxes=((WHOLE_VIDEO, 10, 10, 90, 20),))], ["a"])  # the frame is 80 wide
    train = VideoClipDataset(wide, target=checked, base_frames=4, sampling_rate=2, base_crop=32, min_short=32, max_short=40)
    with pytest.raises(DataError, match=r"rect.mp4: box \(10, 10, 90, 20\) goes beyond the 80x48 frame"):
        train[(0, ClipShape(4, 32))]
    test = VideoTestDataset(wide, target=checked, frames=4, sampling_rate=2, clips=1, crops=1, short_side=32, crop=32)
    with pytest.raises(DataError, match="goes beyond the 80x48 frame"):
        test[0]
