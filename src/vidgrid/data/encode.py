"""Write frames as an H.264 MP4 (used by ``vidgrid synth``, ``vidgrid data prepare``, tests, benchmarks)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
import torch


def as_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Streaming H.264 MP4 writer (yuv420p): ``with VideoWriter(...) as w: w.write(frame)``.

    Frames are uint8 (H, W, 3) RGB arrays or ``av.VideoFrame`` (any format; converted, and scaled to
    the writer's size). ``keyint`` is the largest distance between key frames (``None`` = x264's
    default of 250). ``fast_decode`` uses x264's ``fastdecode`` tuning (no CABAC, no deblocking):
    about 1.5× faster decoding for about 35% larger files. The encoder uses frame threads only (``thread_type="FRAME"``; ``threads`` 0 =
    automatic count): slice threads would split every frame into slices and make threaded decoding
    look faster than on real files. x264's macroblock tree is off: with it, encoding the same frames
    again in one process gave up to four different files, depending on what the process had
    allocated before (about one synthetic video in ten differed between two ``vidgrid synth`` runs);
    without it the same frames always give the same file.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float | Fraction,
        *,
        keyint: int | None = None,
        crf: int = 23,
        fast_decode: bool = False,
        threads: int = 0,
    ) -> None:
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"H.264 yuv420p needs positive even sizes, got {width}x{height}")
        rate = as_rate(fps)
        options = {"crf": str(crf), "x264-params": "mbtree=0"}
        if keyint is not None:
            options["g"] = str(keyint)
        if fast_decode:
            options["tune"] = "fastdecode"
        self.width, self.height = width, height
        self._container = av.open(str(path), mode="w", format="mp4")
        self._stream = self._container.add_stream("libx264", rate=rate, options=options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._time_base = 1 / rate
        self._stream.codec_context.time_base = self._time_base
        self._stream.thread_type = "FRAME"
        self._stream.thread_count = threads
        self._count = 0

    def write(self, image: np.ndarray | av.VideoFrame) -> None:
        """Append one frame: uint8 (H, W, 3) RGB, or a decoded ``av.VideoFrame``."""
        if isinstance(image, av.VideoFrame):
            frame = image.reformat(width=self.width, height=self.height, format="yuv420p", interpolation="AREA")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: self.height, : self.width]), format="rgb24")
        frame.pts, frame.time_base = self._count, self._time_base
        self._count += 1
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._count:
            self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def write_video(
    path: str | Path,
    frames: np.ndarray | torch.Tensor,
    fps: float | Fraction,
    *,
    keyint: int | None = None,
    crf: int = 23,
) -> None:
    """Encode ``frames`` uint8 (T, H, W, 3) RGB to an H.264 MP4 at ``path`` (see :class:`VideoWriter`).

    Odd heights or widths lose their last row or column (yuv420p needs even sizes).
    """
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {array.dtype} {tuple(array.shape)}")
    height, width = array.shape[1] // 2 * 2, array.shape[2] // 2 * 2
    if array.shape[0] == 0 or height == 0 or width == 0:
        raise ValueError(f"cannot encode an empty video of shape {tuple(array.shape)}")
    with VideoWriter(path, width, height, fps, keyint=keyint, crf=crf) as writer:
        for image in array:
            writer.write(image)
