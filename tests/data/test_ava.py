"""AVA keyframe annotations: label map, boxes CSV, exclusions, proposals (good and broken files),
training / test box selection, and keyframe clips centred on their timestamp."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidgrid.data.annotations import load_annotations
from vidgrid.data.dataset import VideoClipDataset, VideoTestDataset
from vidgrid.data.formats import detect_format
from vidgrid.data.formats.ava import ProposalSettings, read_label_map, read_proposals, select_rois
from vidgrid.errors import DataError
from vidgrid.types import ClipShape

from tests.data.conftest import read_index

LABEL_MAP = 'item {\n  name: "stand"\n  id: 1\n}\nitem { name: "walk" id: 3 }\nitem {\n  name: "talk to"\n  id: 7\n}\n'
BOXES = (
    "v1,1,0.1,0.2,0.5,0.9,1,0\n"
    "v1,1,0.1,0.2,0.5,0.9,7,0\n"  # same person: one box, two classes
    "v1,1,0.5,0.1,0.9,0.8,3,1\n"
    "v1,1,0.5,0.1,0.9,0.8,2,1\n"  # action 2 is not in the label map: dropped
    "v2,0.5,0.0,0.0,1.0,1.0,3,0\n"
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def ava(tmp_path: Path) -> Path:
    write(tmp_path, "label_map.pbtxt", LABEL_MAP)
    return write(tmp_path, "train.csv", BOXES)


def test_label_map_keeps_file_order_and_ids(tmp_path: Path):
    assert read_label_map(write(tmp_path, "m.pbtxt", LABEL_MAP)) == ([1, 3, 7], ["stand", "walk", "talk to"])


@pytest.mark.parametrize("text, message", [
    ('item { name: "a" }', "line 1: expected"),
    ('item { name: "a" id: 1 }\nitem { name: "b" id: 1 }', "line 2: id 1 must be >= 1 and appear once"),
    ("nothing here", "no 'item"),
])
def test_broken_label_maps(tmp_path: Path, text: str, message: str):
    with pytest.raises(DataError, match=message):
        read_label_map(write(tmp_path, "m.pbtxt", text))


def test_boxes_csv_gives_one_multi_label_sample_per_keyframe(ava: Path):
    assert detect_format(ava) == "ava"
    ann = load_annotations(ava, format="ava")
    assert ann.classes == ["stand", "walk", "talk to"] and ann.multi_label
    first, second = ann.samples
    assert first.path == ava.parent / "v1.mp4" and first.keyframe.time_s == 1.0
    assert first.labels == (0, 1, 2)
    assert set(first.keyframe.truth) == {((0.1, 0.2, 0.5, 0.9), (0, 2)), ((0.5, 0.1, 0.9, 0.8), (1,))}
    assert first.keyframe.rois == first.keyframe.truth  # without proposals: the annotated boxes
    assert second.keyframe.time_s == 0.5


def test_existing_video_extension_is_found(ava: Path):
    (ava.parent / "v2.webm").write_bytes(b"x")
    assert load_annotations(ava, format="ava").samples[1].path.name == "v2.webm"


@pytest.mark.parametrize("line, message", [
    ("v1,1,0.1,0.2,0.5,0.9,1", "line 2: expected 'video_id,timestamp_s,x1,y1,x2,y2,action_id,person_id', got 7 fields"),
    ("v1,abc,0.1,0.2,0.5,0.9,1,0", "line 2: timestamp 'abc' is not a number"),
    ("v1,1,0.5,0.2,0.1,0.9,1,0", r"line 2: box \(0.5, 0.2, 0.1, 0.9\) needs corners in \[0, 1\]"),
    ("v1,1,0.1,0.2,1.5,0.9,1,0", "line 2: box"),
    ("v1,1,0.1,0.2,0.5,0.9,0,0", "line 2: action_id 0 must be >= 1"),
    ("v1,1,0.1,0.2,0.5,0.9,x,0", "line 2: action_id 'x' is not an integer"),
])
def test_malformed_boxes_lines_name_file_and_line(tmp_path: Path, line: str, message: str):
    write(tmp_path, "label_map.pbtxt", LABEL_MAP)
    path = write(tmp_path, "train.csv", "v1,1,0.1,0.2,0.5,0.9,1,0\n" + line + "\n")
    with pytest.raises(DataError, match=f"{path}: {message}"):
        load_annotations(path, format="ava")


def test_missing_label_map_is_named(tmp_path: Path):
    path = write(tmp_path, "train.csv", BOXES)
    with pytest.raises(DataError, match="label_map.pbtxt"):
        load_annotations(path, format="ava")


def test_proposals_in_both_layouts(tmp_path: Path):
    plain = write(tmp_path, "p.csv", "v1,1,0.1,0.2,0.5,0.9,0.95\n")
    pyslowfast = write(tmp_path, "q.csv", "v1,0902,0.1,0.2,0.5,0.9,,0.95\nv1,0902,0.2,0.2,0.5,0.9,80,0.5\n")
    assert read_proposals(plain) == {("v1", 1.0): [((0.1, 0.2, 0.5, 0.9), 0.95)]}
    assert read_proposals(pyslowfast)[("v1", 902.0)][1] == ((0.2, 0.2, 0.5, 0.9), 0.5)
    with pytest.raises(DataError, match="p2.csv: line 1: score 'high' is not a number"):
        read_proposals(write(tmp_path, "p2.csv", "v1,1,0.1,0.2,0.5,0.9,high\n"))
    with pytest.raises(DataError, match="p3.csv: line 1: expected 'video_id,timestamp_s,x1,y1,x2,y2"):
        read_proposals(write(tmp_path, "p3.csv", "v1,1,0.1,0.2,0.5\n"))


def test_training_boxes_add_overlapping_proposals_and_test_boxes_are_the_confident_ones():
    truth = (((0.0, 0.0, 0.5, 0.5), (1,)),)
    near = (0.0, 0.0, 0.5, 0.52)  # IoU 0.96
    far = (0.0, 0.0, 0.5, 0.6)  # IoU 0.83
    proposals = [(near, 0.95), (far, 0.95), (near, 0.7)]
    train = select_rois(truth, proposals, train_iou=0.9, min_score=0.8)
    assert train == (truth[0], (near, (1,)))
    assert select_rois(truth, proposals, train_iou=None, min_score=0.8) == ((near, ()), (far, ()))


def test_exclusions_and_proposals_through_load_annotations(ava: Path, tmp_path: Path):
    excluded = write(tmp_path, "ex.csv", "v2,0.5\n")
    proposals = write(tmp_path, "props.csv", "v1,1,0.1,0.2,0.5,0.9,0.9\nv1,1,0.3,0.3,0.4,0.4,0.99\n")
    settings = ProposalSettings(proposals, excluded, train_iou=None, min_score=0.8)
    ann = load_annotations(ava, format="ava", proposals=settings)
    assert [s.keyframe.time_s for s in ann.samples] == [1.0]
    assert [box for box, _ in ann.samples[0].keyframe.rois] == [(0.1, 0.2, 0.5, 0.9), (0.3, 0.3, 0.4, 0.4)]
    with pytest.raises(DataError, match="ex2.csv: line 1: expected 'video_id,timestamp_s'"):
        load_annotations(ava, format="ava", proposals=ProposalSettings(None, write(tmp_path, "ex2.csv", "v1\n"), None, 0.8))


def test_keyframe_clips_are_centred_and_keyframes_past_the_end_are_skipped(tmp_path: Path, make_index_video):
    make_index_video("v1.mp4", frames=48, fps=16)
    write(tmp_path, "label_map.pbtxt", LABEL_MAP)
    # keyframe 1 s = frame 16; keyframe 5 s = frame 80 is past the 48 frames
    path = write(tmp_path, "val.csv", "v1,1,0.1,0.1,0.6,0.6,1,0\nv1,5,0.1,0.1,0.6,0.6,1,0\n")
    ann = load_annotations(path, format="ava")
    test = VideoTestDataset(ann, target=lambda s, v: v, frames=4, sampling_rate=3, clips=1, crops=0, short_side=32, crop=32)
    views, where, index = test[0]
    assert index == 0 and views.shape == (1, 3, 4, 32, 32) and where[0].size == (32, 32)
    assert read_index(views[0].permute(1, 2, 3, 0)) == [10, 13, 16, 19]
    _, _, index = test[1]
    assert index == -1 and test.skipped() == [(f"{tmp_path / 'v1.mp4'}@5s", "keyframe outside the video")]
    train = VideoClipDataset(ann, target=lambda s, v: v[0].frame, base_frames=4, sampling_rate=3, base_crop=32,
                             min_short=32, max_short=32, flip=False)
    clip, centre, served = train[(0, ClipShape(4, 32))]
    assert served == 0 and read_index(clip.permute(1, 2, 3, 0)) == [10, 13, 16, 19]
