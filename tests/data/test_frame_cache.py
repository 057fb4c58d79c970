"""The decoded-video cache serves the pixels decoding serves, within its budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.dataset import VideoClipDataset
from vidgrid.data.decode import DecodeError, decode_frames
from vidgrid.data.encode import write_video
from vidgrid.data.frame_cache import DecodedVideoCache
from vidgrid.tasks.classification import Classification
from vidgrid.types import ClipShape

LABEL = Classification(["a", "b"]).clip_target
TEXTURE_FRAME, INDEX_FRAME = 48 * 64 * 3, 48 * 48 * 3  # bytes of a decoded frame of the two test videos


@pytest.fixture
def textured_video(tmp_path):
    """40 frames of moving texture, 48×64, a key frame every 8: P-frames whose pixels depend on the reference chain."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 104, 3), dtype=np.uint8)
    frames = np.stack([base[:, k : k + 64] for k in range(0, 40)]).copy()
    path = tmp_path / "texture.mp4"
    write_video(path, frames, 24, keyint=8)
    return path


@pytest.mark.parametrize("indices", [[0, 4, 8, 12], [13, 21, 29, 37], [39, 39, 2, 2], [17]])
def test_cached_frames_equal_the_clip_decoded_alone(textured_video, indices):
    cache = DecodedVideoCache(budget_bytes=2**30)
    cache.frames(textured_video, 40, [5], TEXTURE_FRAME)  # fills the cache with every frame
    assert cache.used_bytes == 40 * 48 * 64 * 3
    assert torch.equal(cache.frames(textured_video, 40, indices, TEXTURE_FRAME), decode_frames(textured_video, indices))


def test_a_video_past_the_budget_is_served_but_not_kept(textured_video, make_index_video):
    other = make_index_video(frames=40, size=48)
    cache = DecodedVideoCache(budget_bytes=40 * 48 * 64 * 3)
    cache.frames(textured_video, 40, [0], TEXTURE_FRAME)
    assert torch.equal(cache.frames(other, 40, [3, 7], INDEX_FRAME), decode_frames(other, [3, 7]))
    assert torch.equal(cache.frames(other, 40, [1], INDEX_FRAME), decode_frames(other, [1]))
    assert cache.used_bytes == 40 * 48 * 64 * 3  # only the first video
    assert DecodedVideoCache(budget_bytes=0).frames(other, 40, [2], INDEX_FRAME).shape == (1, 48, 48, 3)


def test_a_stream_shorter_than_its_header_serves_the_clips_that_decode(textured_video):
    cache = DecodedVideoCache(budget_bytes=2**30)
    assert torch.equal(cache.frames(textured_video, 60, [1, 2], TEXTURE_FRAME), decode_frames(textured_video, [1, 2]))  # 60 > 40 frames
    assert cache.used_bytes == 0
    with pytest.raises(DecodeError, match="before frame 59"):
        cache.frames(textured_video, 60, [59], TEXTURE_FRAME)


def test_a_training_set_with_a_cache_gives_the_same_clips(textured_video, make_index_video):
    annotations = Annotations([Sample(textured_video, 0), Sample(make_index_video(frames=40, size=48), 1)], ["a", "b"])
    options = dict(target=LABEL, base_frames=8, sampling_rate=4, base_crop=32, min_short=32, max_short=40, seed=3)
    plain = VideoClipDataset(annotations, **options)
    cached = VideoClipDataset(annotations, **options, cache_bytes=2**30)
    for epoch in range(3):
        for index in range(2):
            for shape in (ClipShape(8, 32), ClipShape(4, 23)):
                item = (index, shape, epoch)
                assert torch.equal(plain[item][0], cached[item][0])
    assert cached._cache.used_bytes == 40 * 48 * 64 * 3 + 40 * 48 * 48 * 3
