"""Clip-index math of the sampling grids (multigrid paper §3.1, §4)."""

from __future__ import annotations

import random

import pytest

from vidgrid.data import sampling


@pytest.mark.parametrize(("frames", "expected"), [(16, (4, 4)), (8, (4, 8)), (4, (4, 16)), (5, (4, 12))])
def test_stride_range_is_the_papers(frames: int, expected: tuple[int, int]) -> None:
    # base T = 16 frames at τ = 4: t frames get a stride in [τ, τ·T/t] (floored to an integer)
    assert sampling.stride_range(frames, base_frames=16, sampling_rate=4) == expected


def test_random_strides_cover_the_whole_range_and_stay_inside_it() -> None:
    rng = random.Random(0)
    strides = set()
    for _ in range(500):
        indices = sampling.random_stride_indices(300, 4, 16, 2, rng)
        steps = {b - a for a, b in zip(indices, indices[1:])}
        assert len(steps) == 1  # one stride per clip
        strides |= steps
        assert 0 <= indices[0] and indices[-1] < 300
    assert strides == set(range(2, 2 * 16 // 4 + 1))


def test_random_start_covers_the_video() -> None:
    rng = random.Random(1)
    starts = {sampling.random_stride_indices(40, 8, 8, 2, rng)[0] for _ in range(400)}
    # span (8 - 1)·2 + 1 = 15 frames, so starts 0..25 are all reachable
    assert starts == set(range(26))


def test_span_longer_than_the_video_repeats_the_last_frame() -> None:
    assert sampling.strided_indices(20, 8, 4, 0) == [0, 4, 8, 12, 16, 19, 19, 19]
    rng = random.Random(0)
    for _ in range(20):
        indices = sampling.random_stride_indices(5, 8, 8, 2, rng)
        assert indices[0] == 0 and max(indices) == 4 and indices == sorted(indices)


@pytest.mark.parametrize(("num_frames", "frames"), [(48, 8), (50, 16), (7, 8), (1, 4)])
def test_segment_sampling_takes_one_frame_per_segment(num_frames: int, frames: int) -> None:
    rng = random.Random(0)
    bounds = sampling.segment_bounds(num_frames, frames)
    assert len(bounds) == frames and bounds[0][0] == 0 and bounds[-1][1] == num_frames
    for _ in range(50):
        indices = sampling.random_segment_indices(num_frames, frames, rng)
        assert len(indices) == frames
        assert all(begin <= i < end for i, (begin, end) in zip(indices, bounds))


def test_segment_bounds_split_evenly() -> None:
    assert sampling.segment_bounds(48, 8) == [(6 * k, 6 * k + 6) for k in range(8)]


def test_test_clips_are_evenly_spaced() -> None:
    views = sampling.eval_stride_indices(100, 4, 2, clips=5)
    starts = [v[0] for v in views]
    # span 7, room 93: starts at the centres of 5 equal bins of the room
    assert starts == [round(93 * (k + 0.5) / 5) for k in range(5)]
    gaps = {b - a for a, b in zip(starts, starts[1:])}
    assert max(gaps) - min(gaps) <= 1
    assert all(v == list(range(v[0], v[0] + 8, 2)) for v in views)
    assert views[-1][-1] < 100


def test_single_test_clip_is_centred_and_short_videos_start_at_zero() -> None:
    assert sampling.eval_stride_indices(41, 3, 5, clips=1) == [[15, 20, 25]]
    assert sampling.eval_stride_indices(5, 4, 4, clips=3) == [[0, 4, 4, 4]] * 3


def test_test_segment_clips_are_deterministic_and_inside_their_segments() -> None:
    views = sampling.eval_segment_indices(60, 6, clips=2)
    bounds = sampling.segment_bounds(60, 6)
    assert views == [[b + 2 for b, _ in bounds], [b + 7 for b, _ in bounds]]
