"""Training and test datasets: shapes on request, real frame indices, broken videos skipped and counted."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.data.conftest import read_index
from vidgrid.data import dataset as dataset_module
from vidgrid.data import sampling
from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.dataset import VideoClipDataset, VideoTestDataset
from vidgrid.data.encode import write_video
from vidgrid.errors import DataError
from vidgrid.types import ClipShape
from vidgrid.tasks.classification import Classification
from vidgrid.tasks.multi_label import MultiLabelClassification

LABEL = Classification([str(k) for k in range(10)]).clip_target
"""Class-id targets for the single-label annotations of these tests."""

BASE = dict(base_frames=8, sampling_rate=2, base_crop=32, min_short=32, max_short=40)


def _annotations(paths: list[Path], labels: list[int] | None = None) -> Annotations:
    labels = labels if labels is not None else [i % 3 for i in range(len(paths))]
    return Annotations([Sample(p, label) for p, label in zip(paths, labels)], ["a", "b", "c"])


def _thwc(clip: torch.Tensor) -> torch.Tensor:
    return clip.permute(1, 2, 3, 0)  # (C, T, H, W) -> (T, H, W, C)


@pytest.fixture
def broken_files(tmp_path: Path, make_index_video) -> list[Path]:
    """A garbage file, a missing file and a 4-frame video (shorter than the base clip of 8)."""
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 50)
    return [garbage, tmp_path / "missing.mp4", make_index_video("short.mp4", frames=4)]


@pytest.mark.parametrize("shape", [ClipShape(8, 32), ClipShape(4, 22), ClipShape(2, 16), ClipShape(4, 32)])
def test_returns_the_requested_shape_with_real_frames(index_video: Path, shape: ClipShape) -> None:
    data = VideoClipDataset(_annotations([index_video], [2]), target=LABEL, **BASE, seed=1)
    low, high = sampling.stride_range(shape.frames, 8, 2)
    for epoch in range(3):
        data.set_epoch(epoch)
        clip, target, index = data[(0, shape)]
        assert clip.shape == (3, shape.frames, shape.crop, shape.crop) and clip.dtype == torch.uint8
        assert target.dtype == torch.int64 and int(target) == 2 and index == 0
        frames = read_index(_thwc(clip))
        steps = {b - a for a, b in zip(frames, frames[1:])}
        assert len(steps) <= 1 and all(low <= s <= high for s in steps), frames
        assert 0 <= frames[0] and frames[-1] < 48


def test_segment_sampling_takes_one_frame_per_segment(index_video: Path) -> None:
    data = VideoClipDataset(_annotations([index_video]), target=LABEL, **BASE, temporal_sampling="segment", spatial_sampling="resized_crop")
    bounds = sampling.segment_bounds(48, 6)
    for epoch in range(3):
        data.set_epoch(epoch)
        clip, _, _ = data[(0, ClipShape(6, 24))]
        assert clip.shape == (3, 6, 24, 24)
        assert all(b <= i < e for i, (b, e) in zip(read_index(_thwc(clip)), bounds))


def test_draws_are_reproducible_and_change_with_the_epoch(index_video: Path) -> None:
    make = lambda: VideoClipDataset(_annotations([index_video]), target=LABEL, **BASE, spatial_sampling="resized_crop", seed=3)  # noqa: E731
    a, b = make(), make()
    shape = ClipShape(4, 16)
    assert torch.equal(a[(0, shape)][0], b[(0, shape)][0])
    clips = []
    for epoch in range(4):
        a.set_epoch(epoch)
        clips.append(read_index(_thwc(a[(0, shape)][0])))
        # a loader that runs across epochs names the epoch in the item: the same clip
        assert read_index(_thwc(b[(0, shape, epoch)][0])) == clips[-1]
    assert len({tuple(c) for c in clips}) > 1


def test_flip_can_be_switched_off(tmp_path: Path) -> None:
    ramp = np.broadcast_to(np.linspace(0, 255, 32, dtype=np.float32), (16, 32, 32)).astype(np.uint8)
    path = tmp_path / "ramp.mp4"
    write_video(path, np.stack([ramp, ramp, ramp], -1), 30, keyint=8)  # dark left, bright right
    options = dict(base_frames=8, sampling_rate=1, base_crop=32, min_short=32, max_short=32)

    def left_darker(flip: bool) -> list[bool]:
        data = VideoClipDataset(_annotations([path]), target=LABEL, **options, flip=flip)
        out = []
        for epoch in range(12):
            data.set_epoch(epoch)
            clip = data[(0, ClipShape(8, 32))][0].float()
            out.append(bool(clip[..., :8].mean() < clip[..., -8:].mean()))
        return out

    assert all(left_darker(False))
    assert not all(left_darker(True))


def test_rand_augment_and_multi_label_targets(index_video: Path) -> None:
    annotations = Annotations([Sample(index_video, -1, (0, 2))], ["a", "b", "c"], multi_label=True)
    target_of = MultiLabelClassification(["a", "b", "c"]).clip_target
    data = VideoClipDataset(annotations, target=target_of, **BASE, rand_augment=(2, 9))
    clip, target, _ = data[(0, ClipShape(4, 16))]
    assert clip.shape == (3, 4, 16, 16)
    plain = VideoClipDataset(annotations, target=target_of, **BASE)[(0, ClipShape(4, 16))][0]  # same draws, no RandAugment
    assert not torch.equal(clip, plain)
    assert target.tolist() == [1.0, 0.0, 1.0] and target.dtype == torch.float32


def test_broken_videos_are_replaced_counted_and_logged_once(
    index_video: Path, broken_files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    paths = [index_video, *broken_files]
    data = VideoClipDataset(_annotations(paths, [0, 1, 1, 1]), target=LABEL, **BASE, max_retries=30)
    shape = ClipShape(4, 24)
    with caplog.at_level(logging.WARNING, logger="vidgrid.data.dataset"):
        for epoch in range(3):
            data.set_epoch(epoch)
            for index in range(len(paths)):
                clip, target, served = data[(index, shape)]
                assert clip.shape == (3, 4, 24, 24) and served == 0 and int(target) == 0
    skipped = dict(data.skipped())
    assert skipped == {
        str(broken_files[0]): "cannot decode",
        str(broken_files[1]): "missing file",
        str(broken_files[2]): "fewer frames than the base clip",
    }
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all(any(str(p) in m for m in messages) for p in broken_files)


def test_broken_videos_are_counted_across_dataloader_workers(index_video: Path, broken_files: list[Path]) -> None:
    paths = [index_video, index_video, *broken_files]
    data = VideoClipDataset(_annotations(paths), target=LABEL, **BASE, max_retries=30)
    batches = [[(i, ClipShape(2, 16)) for i in range(len(paths))] for _ in range(4)]
    loader = DataLoader(data, batch_sampler=batches, num_workers=2, multiprocessing_context="fork")
    served = []
    for clips, targets, indices in loader:
        assert clips.shape == (len(paths), 3, 2, 16, 16)
        served += indices.tolist()
    assert set(served) <= {0, 1}
    assert sorted(data.skipped()) == sorted(
        [(str(broken_files[0]), "cannot decode"), (str(broken_files[1]), "missing file"),
         (str(broken_files[2]), "fewer frames than the base clip")]
    )


def test_gives_up_with_a_clear_error_when_every_video_is_bad(broken_files: list[Path]) -> None:
    data = VideoClipDataset(_annotations(broken_files), target=LABEL, **BASE, max_retries=3)
    with pytest.raises(DataError, match="no decodable replacement found in 3 retries"):
        data[(0, ClipShape(4, 16))]


def test_test_dataset_cuts_every_view_from_one_decode(
    make_index_video, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_index_video("wide.mp4", frames=60)
    calls = []
    decode = dataset_module.decode_frames
    monkeypatch.setattr(dataset_module, "decode_frames", lambda p, idx, **kw: calls.append(list(idx)) or decode(p, idx, **kw))
    data = VideoTestDataset(
        _annotations([path, tmp_path / "missing.mp4"]), target=LABEL, frames=4, sampling_rate=3, clips=3, crops=3, short_side=24, crop=16
    )
    views, target, index = data[0]
    assert views.shape == (9, 3, 4, 16, 16) and views.dtype == torch.uint8 and index == 0
    assert len(calls) == 1
    expected = sampling.eval_stride_indices(60, 4, 3, 3)
    for k in range(9):
        assert read_index(_thwc(views[k])) == expected[k // 3]
    views, _, index = data[1]
    assert index == -1 and views.shape == (9, 3, 4, 16, 16)
    assert data.skipped() == [(str(tmp_path / "missing.mp4"), "missing file")]


def test_test_dataset_three_crops_cover_the_long_side(tmp_path: Path) -> None:
    ramp = np.broadcast_to(np.linspace(0, 255, 64, dtype=np.float32), (4, 32, 64)).astype(np.uint8)
    path = tmp_path / "ramp.mp4"
    write_video(path, np.stack([ramp, ramp, ramp], -1), 30)
    data = VideoTestDataset(_annotations([path]), target=LABEL, frames=2, sampling_rate=1, clips=1, crops=3, short_side=32, crop=32)
    views = data[0][0].float()
    brightness = [float(v.mean()) for v in views]  # left, centre, right
    assert brightness[0] < brightness[1] < brightness[2]


def test_test_crop_larger_than_short_side_is_an_error(index_video: Path) -> None:
    with pytest.raises(DataError, match="larger than the test short side"):
        VideoTestDataset(_annotations([index_video]), target=LABEL, frames=4, sampling_rate=1, clips=1, crops=1, short_side=16, crop=24)
