"""Videos that must fail alone, never the run: a resolution change midway, still images, clips too
short for the test views, and a data root that matches none of the list."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from vidgrid.data import decode
from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.dataset import VideoClipDataset, VideoTestDataset
from vidgrid.data.decode import DecodeError, decode_frames, probe_video
from vidgrid.data.encode import write_video
from vidgrid.errors import DataError
from vidgrid.types import ClipShape
from vidgrid.tasks.classification import Classification

LABEL = Classification([str(k) for k in range(10)]).clip_target
"""Class-id targets for the single-label annotations of these tests."""


def write_ts_segment(path: Path, size: int, frames: int, first_pts: int) -> bytes:
    """One H.264 MPEG-TS segment of ``frames`` flat size×size frames; returns its bytes."""
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=30, options={"g": "8"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 16 * i, np.uint8), format="rgb24")
            frame.pts = first_pts + i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


@pytest.fixture
def resized_midway(tmp_path: Path) -> Path:
    """32 frames: 16 at 32×32 then 16 at 48×48, joined as broadcast recordings are (two TS segments)."""
    joined = write_ts_segment(tmp_path / "a.ts", 32, 16, 0) + write_ts_segment(tmp_path / "b.ts", 48, 16, 16)
    path = tmp_path / "joined.ts"
    path.write_bytes(joined)
    return path


def test_a_resolution_change_midway_comes_out_at_the_first_frame_size(resized_midway):
    frames = decode_frames(resized_midway, [0, 10, 20, 30])
    assert frames.shape == (4, 32, 32, 3)
    assert decode_frames(resized_midway, [20, 25]).shape == (2, 32, 32, 3)  # a clip inside the second segment too


def test_any_failure_inside_decoding_is_that_videos_decode_error(index_video, monkeypatch):
    def broken(frame, size):
        raise ValueError("converter exploded")

    monkeypatch.setattr(decode, "_rgb", broken)
    with pytest.raises(DecodeError, match="converter exploded") as caught:
        decode_frames(index_video, [0, 1])
    assert caught.value.path == str(index_video)


def test_training_and_test_datasets_serve_a_video_resized_midway(resized_midway):
    annotations = Annotations([Sample(resized_midway, 0)], ["a"])
    train = VideoClipDataset(annotations, target=LABEL, base_frames=8, sampling_rate=2, base_crop=32, min_short=32, max_short=36)
    clip, _, index = train[(0, ClipShape(8, 32))]
    assert clip.shape == (3, 8, 32, 32) and index == 0 and train.skipped() == []
    test = VideoTestDataset(annotations, target=LABEL, frames=8, sampling_rate=4, clips=2, crops=1, short_side=32, crop=32)
    views, _, index = test[0]
    assert views.shape == (2, 3, 8, 32, 32) and index == 0


def test_a_renamed_image_is_not_a_video(tmp_path):
    import matplotlib.image

    matplotlib.image.imsave(tmp_path / "photo.png", np.zeros((32, 32, 3)))
    fake = tmp_path / "photo.mp4"
    fake.write_bytes((tmp_path / "photo.png").read_bytes())
    with pytest.raises(DecodeError, match="not a video"):
        probe_video(fake)


def test_a_video_shorter_than_the_test_clip_is_reported_too_short(tmp_path, index_video):
    write_video(tmp_path / "two.mp4", np.zeros((2, 32, 32, 3), np.uint8), 30)
    annotations = Annotations([Sample(tmp_path / "two.mp4", 0), Sample(index_video, 0)], ["a"])
    test = VideoTestDataset(annotations, target=LABEL, frames=4, sampling_rate=2, clips=1, crops=1, short_side=32, crop=32)
    assert test[0][2] == -1 and test[1][2] == 1
    assert test.skipped() == [(str(tmp_path / "two.mp4"), "fewer frames than the base clip")]


def test_a_list_where_nearly_nothing_exists_stops_with_one_error(tmp_path, index_video, caplog):
    samples = [Sample(index_video, 0)] + [Sample(tmp_path / f"missing{i:02d}.mp4", 0) for i in range(40)]
    train = VideoClipDataset(Annotations(samples, ["a"]), target=LABEL, base_frames=4, sampling_rate=2, base_crop=32,
                             min_short=32, max_short=36, max_retries=100)
    with caplog.at_level(logging.WARNING), pytest.raises(DataError, match=r"probably wrong") as caught:
        for i in range(1, 41):
            train[(i, ClipShape(4, 32))]
    assert "8 of 8 videos tried failed (missing file:" in str(caught.value) and "missing01.mp4" in str(caught.value)
    assert caplog.records == []  # not one warning per file


def test_a_few_bad_videos_among_good_ones_do_not_stop_the_run(tmp_path, make_index_video):
    good = [Sample(make_index_video(f"v{i}.mp4", frames=8), 0) for i in range(3)]
    samples = good * 6 + [Sample(tmp_path / f"missing{i:02d}.mp4", 0) for i in range(16)]
    train = VideoClipDataset(Annotations(samples, ["a"]), target=LABEL, base_frames=4, sampling_rate=2, base_crop=32,
                             min_short=32, max_short=36, max_retries=100)
    for i in range(len(samples)):
        train[(i, ClipShape(4, 32))]
    assert len(train.skipped()) == 16


def test_skipped_videos_carry_over_to_another_dataset_on_the_same_list(tmp_path, index_video):
    samples = [Sample(index_video, 0), Sample(tmp_path / "gone.mp4", 0)]
    first = VideoClipDataset(Annotations(samples, ["a"]), target=LABEL, base_frames=4, sampling_rate=2, base_crop=32,
                             min_short=32, max_short=36)
    first[(1, ClipShape(4, 32))]
    second = VideoClipDataset(Annotations(samples, ["a"]), target=LABEL, base_frames=4, sampling_rate=2, base_crop=32,
                              min_short=32, max_short=36)
    second.mark_skipped([list(s) for s in first.skipped()])
    assert second.skipped() == first.skipped() == [(str(tmp_path / "gone.mp4"), "missing file")]


def test_a_list_starting_with_a_byte_order_mark_keeps_its_first_video(tmp_path):
    from vidgrid.data.annotations import load_annotations

    (tmp_path / "list.txt").write_text("\ufeffa.mp4 0\nb.mp4 1\n", encoding="utf-8")
    annotations = load_annotations(tmp_path / "list.txt", root=tmp_path)
    assert [s.path.name for s in annotations.samples] == ["a.mp4", "b.mp4"]
