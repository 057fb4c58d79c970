"""Object boxes: tracks read from the annotations, the box at a clip's centre frame, and the box as
it appears in the clip after the spatial transforms.

**Format.** A box is ``(x1, y1, x2, y2)`` in source-video pixels with the origin at the top-left
corner of the top-left pixel (the practitioner's box-format note): ``x1 < x2``, ``y1 < y2``, both
corners inside the frame. Coordinates are continuous, so a box covering pixel columns 0..9 is
``x1 = 0, x2 = 10``. A video's boxes come as a *track*: rows ``(frame, x1, y1, x2, y2)`` sorted by
frame, linearly interpolated between annotated frames and held constant before the first and after
the last; one row with frame ``-1`` is one box for the whole video.

**Where a clip was cut.** Every spatial transform of :mod:`vidgrid.data.transforms` is a crop window
in source pixels resized to the output (short-side rescale then crop, RandomResizedCrop, the test
crops of a resized frame, every multigrid crop size), possibly mirrored. The datasets describe each
clip by a :class:`ClipView` (its centre frame, that window, the output size, the flip), and
:func:`view_box` maps a source box through it exactly: ``x' = (x - wx1) · out_w / (wx2 - wx1)``,
then ``x' -> out_w - x'`` under a flip.

**Boxes that leave the crop.** The mapped box is clipped to the clip. A box that keeps no area in
the clip (it lies entirely outside the crop, or is cut to a line) is returned clipped and flagged
*not visible*; a box task gives such a clip no box loss and leaves it out of the box metrics. No
value is ever NaN.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from vidgrid.errors import DataError

WHOLE_VIDEO = -1
"""The frame of a track row that holds for the whole video."""

BoxRow = tuple[int, float, float, float, float]
"""One annotated box: ``(frame, x1, y1, x2, y2)``."""


@dataclass(frozen=True)
class ClipView:
    """Where one clip (or one test view) was cut from its video."""

    frame: float
    """Centre frame of the clip, in source frame indices (the middle of its first and last frame)."""
    window: tuple[float, float, float, float]
    """``(x1, y1, x2, y2)`` of the source frame that became the clip, in source pixels."""
    size: tuple[int, int]
    """``(height, width)`` of the clip."""
    flip: bool = False
    """Whether the clip was mirrored left-right after the crop."""
    frame_size: tuple[int, int] | None = None
    """``(height, width)`` of the source frames, where known (a box beyond them is an error)."""


def crop_view(frame: float, box: tuple[int, int, int, int], size: tuple[int, int], flip: bool = False,
              scale: tuple[float, float] = (1.0, 1.0), frame_size: tuple[int, int] | None = None) -> ClipView:
    """The view of a ``(top, left, height, width)`` crop box of frames resized by ``scale`` =
    ``(sy, sx)`` from the source (1 = cut from the source frames themselves)."""
    top, left, height, width = box
    sy, sx = scale
    return ClipView(frame, (left / sx, top / sy, (left + width) / sx, (top + height) / sy), size, flip, frame_size)


def view_box(box: tuple[float, float, float, float], view: ClipView) -> tuple[tuple[float, float, float, float], bool]:
    """A source box as it lies in the clip (clip pixels, clipped to the clip) and whether it keeps area there."""
    wx1, wy1, wx2, wy2 = view.window
    out_h, out_w = view.size
    fx, fy = out_w / (wx2 - wx1), out_h / (wy2 - wy1)
    x1, x2 = _clip((box[0] - wx1) * fx, out_w), _clip((box[2] - wx1) * fx, out_w)
    y1, y2 = _clip((box[1] - wy1) * fy, out_h), _clip((box[3] - wy1) * fy, out_h)
    if view.flip:
        x1, x2 = out_w - x2, out_w - x1
    return (x1, y1, x2, y2), x2 > x1 and y2 > y1


def _clip(value: float, limit: float) -> float:
    return min(max(value, 0.0), float(limit))


def box_at(track: tuple[BoxRow, ...], frame: float) -> tuple[float, float, float, float]:
    """The box of ``track`` at ``frame``: linear between annotated frames, the nearest end outside them."""
    if not track:
        raise ValueError("empty box track")
    frames = [row[0] for row in track]
    k = bisect.bisect_right(frames, frame)
    if k == 0:
        return track[0][1:]
    if k == len(track):
        return track[-1][1:]
    (f0, *a), (f1, *b) = track[k - 1], track[k]
    w = (frame - f0) / (f1 - f0)
    return tuple(p + w * (q - p) for p, q in zip(a, b))  # type: ignore[return-value]


def check_box(box: tuple[float, ...], where: str, frame_size: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
    """``box`` as four floats, or a one-line :class:`DataError` at ``where``: finite, non-negative,
    ``x2 > x1``, ``y2 > y1`` and, when the frame's ``(height, width)`` is known, inside it."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or min(x1, y1, x2, y2) < 0:
        raise DataError(f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) must be finite and non-negative")
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) needs x2 > x1 and y2 > y1")
    if frame_size is not None and (x2 > frame_size[1] or y2 > frame_size[0]):
        raise DataError(
            f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) goes beyond the {frame_size[1]}x{frame_size[0]} frame"
        )
    return x1, y1, x2, y2
