"""Frame-index math of the temporal sampling grids (multigrid paper §3.1, §4 "Multigrid Training Details").

A temporal grid is a span and a stride in source frames; ``frames`` = the number of points on it.
The base grid takes T frames at stride τ (``sampling_rate``). For a clip of t < T frames the
multigrid recipe draws the stride per clip as an integer uniform in [τ, τ·T/t], so coarse grids
cover up to the same span as the base grid (paper §4: "t frames with random stride in [2, 2T/t]").

Spans longer than the video: indices past the last frame are clamped to it, i.e. **the clip repeats
the last frame** (a 20-frame video sampled with 8 frames at stride 4 gives 0, 4, ..., 16, 19, 19, 19).
Every function here is pure: randomness comes in as a ``random.Random`` the caller seeds.
"""

from __future__ import annotations

import math
import random


def clip_span(frames: int, stride: int) -> int:
    """Source frames covered by ``frames`` points at ``stride``: (t - 1)·stride + 1."""
    return (frames - 1) * stride + 1


def stride_range(frames: int, base_frames: int, sampling_rate: int) -> tuple[int, int]:
    """Inclusive integer stride range [τ, ⌊τ·T/t⌋] of a t-frame training clip (paper §4).

    At t >= T (the base grid) the range collapses to the base stride τ.
    """
    if frames < 1 or base_frames < 1 or sampling_rate < 1:
        raise ValueError(f"frames, base_frames, sampling_rate must be >= 1, got {frames}, {base_frames}, {sampling_rate}")
    high = max(sampling_rate, math.floor(sampling_rate * base_frames / frames))
    return sampling_rate, high


def strided_indices(num_frames: int, frames: int, stride: int, start: int) -> list[int]:
    """``frames`` indices ``start + k·stride``, clamped to the last frame (repeats it past the end)."""
    last = num_frames - 1
    return [min(start + k * stride, last) for k in range(frames)]


def random_stride_indices(
    num_frames: int, frames: int, base_frames: int, sampling_rate: int, rng: random.Random
) -> list[int]:
    """Training clip: stride uniform in :func:`stride_range`, start uniform over the valid positions.

    A video shorter than the span starts at 0 and repeats its last frame.
    """
    low, high = stride_range(frames, base_frames, sampling_rate)
    stride = rng.randint(low, high)
    start = rng.randint(0, max(0, num_frames - clip_span(frames, stride)))
    return strided_indices(num_frames, frames, stride, start)


def segment_bounds(num_frames: int, segments: int) -> list[tuple[int, int]]:
    """The video split into ``segments`` equal parts as [begin, end) frame ranges (never empty).

    With fewer frames than segments, neighbouring segments share a frame.
    """
    bounds = []
    for k in range(segments):
        begin = (k * num_frames) // segments
        end = ((k + 1) * num_frames) // segments
        begin = min(begin, num_frames - 1)
        bounds.append((begin, max(end, begin + 1)))
    return bounds


def random_segment_indices(num_frames: int, frames: int, rng: random.Random) -> list[int]:
    """Segment-based training sampling (SSv2, paper appendix; TSN): one random frame per equal segment."""
    return [rng.randrange(begin, end) for begin, end in segment_bounds(num_frames, frames)]


def uniform_clip_starts(num_frames: int, span: int, clips: int) -> list[int]:
    """Start frames of ``clips`` test clips spread evenly: clip k is centred in the k-th of K equal bins.

    K = 1 is the centre clip; a video shorter than the span gives start 0 for every clip.
    """
    room = max(0, num_frames - span)
    return [round(room * (k + 0.5) / clips) for k in range(clips)]


def eval_stride_indices(num_frames: int, frames: int, sampling_rate: int, clips: int) -> list[list[int]]:
    """K uniformly spaced test clips of ``frames`` frames at the base stride τ (multi-view testing)."""
    span = clip_span(frames, sampling_rate)
    return [strided_indices(num_frames, frames, sampling_rate, s) for s in uniform_clip_starts(num_frames, span, clips)]


def eval_segment_indices(num_frames: int, frames: int, clips: int) -> list[list[int]]:
    """K deterministic segment-sampled test clips: clip k takes position (k + 0.5)/K inside each segment."""
    views = []
    for k in range(clips):
        views.append([begin + int((end - begin) * (k + 0.5) / clips) for begin, end in segment_bounds(num_frames, frames)])
    return views


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of the sliding windows of ``window`` frames every ``stride`` frames that fit in a
    ``num_frames`` video (one window at 0 when the video is shorter than a window)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1 frame, got {window}, {stride}")
    return list(range(0, max(num_frames - window, 0) + 1, stride))


def centred_indices(num_frames: int, centre: int, frames: int, stride: int) -> list[int]:
    """``frames`` indices at ``stride`` centred on frame ``centre`` (a keyframe's clip: index
    ``centre + (k - frames // 2)·stride``), clamped to the video (its first or last frame repeats)."""
    return [min(max(centre + (k - frames // 2) * stride, 0), num_frames - 1) for k in range(frames)]
