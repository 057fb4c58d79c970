"""Fast clip decoding with PyAV: seek to the key frame before the first wanted frame, decode forward,
stop after the last one.

Every frame comes out at the stream's first frame size: a stream whose resolution changes midway
(MPEG-TS or HLS segments of different sizes joined) has its other frames rescaled to it, so a clip
always stacks. Any failure while reading one file (FFmpeg's or anything else) is that file's
:class:`DecodeError`, never an exception of another kind.

A frame index ``i`` means the frame on screen at time ``start + i / fps`` of the video stream, where
``fps`` is the stream's average rate and times go through the stream's time base. For a constant
frame rate this is simply the i-th frame; for a variable frame rate it is the frame shown at that
moment, so clips keep their real-time spacing. Half a frame period of tolerance absorbs timestamp
rounding (e.g. WebM's millisecond time base).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from vidgrid.errors import VidgridError

_MAX_RESEEKS = 4
"""Key frames to step back when a seek lands after the first wanted frame (B-frame reordering)."""
_END_TOLERANCE = 2.0
"""Frame periods an index may lie past the last decoded frame before the video counts as truncated."""
_RGB: dict[int, VideoReformatter] = {}
"""One colour converter per process id: it keeps its swscale context between frames, where
``frame.to_ndarray(format="rgb24")`` builds one per frame (20x slower on small videos). Keyed by pid
because a context inherited through ``fork`` (DataLoader workers) may hold threads that did not survive."""


def _rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) RGB pixels of a decoded frame, rescaled to ``size`` = (W, H) if it differs."""
    converter = _RGB.get(os.getpid())
    if converter is None:
        converter = _RGB[os.getpid()] = VideoReformatter()
    return converter.reformat(frame, format="rgb24", width=size[0], height=size[1]).to_ndarray()


class DecodeError(VidgridError):
    """A video that is missing, empty or cannot be decoded; the message names the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):  # keep (path, reason) across process boundaries (DataLoader workers, check)
        return (DecodeError, (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video stream: frame count, average frame rate, size and duration in seconds."""

    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    duration: float


def _open(path: Path) -> av.container.InputContainer:
    """Open a video file, turning missing, empty and unreadable files into a :class:`DecodeError`."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DecodeError(path, "missing file") from None
    except OSError as e:
        raise DecodeError(path, f"cannot read file ({e.strerror})") from None
    if size == 0:
        raise DecodeError(path, "zero-length file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise DecodeError(path, f"not a readable video container ({_ffmpeg_reason(e)})") from None
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()
        raise DecodeError(path, f"not a video (a still image, {container.format.name.removesuffix('_pipe')})")
    if not container.streams.video:
        container.close()
        raise DecodeError(path, "no video stream")
    return container


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's message without the file name PyAV appends."""
    return getattr(error, "strerror", None) or str(error)


def _stream_fps(path: Path, stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's average frame rate (falling back to FFmpeg's guess)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    raise DecodeError(path, "unknown frame rate")


def _count_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Frames in the stream, counted by demuxing (no decoding) when the header does not say."""
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's metadata from its header (frames are counted by demuxing if the header lacks them).

    Raises :class:`DecodeError` for a missing, zero-length or unreadable file, or one with no frames.
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = _stream_fps(path, stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise DecodeError(path, "video stream has no frame size (corrupt header)")
        num_frames = stream.frames or _count_packets(container, stream)
        if num_frames <= 0:
            raise DecodeError(path, "video stream has no frames")
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = num_frames / float(fps)
    except av.FFmpegError as e:
        raise DecodeError(path, f"unreadable stream ({_ffmpeg_reason(e)})") from None
    finally:
        container.close()
    return VideoInfo(path, num_frames, float(fps), width, height, duration)


def iter_frames(path: str | Path, *, threads: int = 0) -> Iterator[av.VideoFrame]:
    """Every frame of a video in display order, as ``av.VideoFrame`` (for re-encoding a whole file)."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        yield from container.decode(stream)
    except av.FFmpegError as e:
        raise DecodeError(path, f"decoding failed ({_ffmpeg_reason(e)})") from None
    finally:
        container.close()


def _frames_from(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, seek_pts: int
) -> Iterator[tuple[int, av.VideoFrame, int | None]]:
    """Seek to the key frame at or before ``seek_pts``; yield ``(pts, frame, keyframe_dts)`` in display order."""
    container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
    keyframe_dts = None
    for packet in container.demux(stream):
        if keyframe_dts is None and packet.dts is not None:
            keyframe_dts = packet.dts
        for frame in packet.decode():
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is not None:
                yield pts, frame, keyframe_dts


def decode_frames(path: str | Path, indices: Sequence[int], *, threads: int = 0) -> torch.Tensor:
    """Decode the frames ``indices`` of a video: uint8 (len(indices), H, W, 3), in the order asked.

    Repeated and unsorted indices are fine; every index must be below the video's frame count.
    Decoding seeks to the key frame before the first wanted frame and stops after the last one, so a
    clip costs its span plus the distance to the previous key frame (``vidgrid data prepare`` makes
    that short). ``threads``: decoder threads (0 = FFmpeg's automatic count, 1 = single-threaded).
    """
    path = Path(path)
    if len(indices) == 0:
        raise ValueError("decode_frames needs at least one index")
    wanted = sorted(set(int(i) for i in indices))
    if wanted[0] < 0:
        raise ValueError(f"negative frame index {wanted[0]}")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        size = (stream.codec_context.width, stream.codec_context.height)  # the first frame's, from the header
        found = _decode_sorted(path, container, stream, wanted, size)
    except av.FFmpegError as e:
        raise DecodeError(path, f"decoding failed ({_ffmpeg_reason(e)})") from None
    except DecodeError:
        raise
    except Exception as e:  # a file that breaks PyAV or the converter in another way is still only this file's failure
        raise DecodeError(path, f"decoding failed ({type(e).__name__}: {e})") from None
    finally:
        container.close()
    by_index = dict(zip(wanted, found))
    return torch.from_numpy(np.stack([by_index[int(i)] for i in indices]))  # (T, H, W, 3)


def _decode_sorted(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream, wanted: list[int],
    size: tuple[int, int],
) -> list[np.ndarray]:
    """RGB arrays of the sorted, unique ``wanted`` indices at ``size`` = (W, H) (see the module docstring)."""
    time_base = stream.time_base
    start = stream.start_time or 0
    period = 1 / (_stream_fps(path, stream) * time_base)  # one frame period in pts units (a Fraction)
    # index i is answered by the last frame with pts <= start + (i + 1/2) * period
    limits = [start + (i + Fraction(1, 2)) * period for i in wanted]
    seek_pts = int(start + wanted[0] * period)
    for attempt in range(_MAX_RESEEKS + 2):
        seek_pts = seek_pts if attempt <= _MAX_RESEEKS else start  # last resort: from the beginning
        frames = _frames_from(container, stream, seek_pts)
        first = next(frames, None)
        if first is None:
            raise DecodeError(path, f"no frame decodes at or after frame {wanted[0]}")
        first_pts, _, keyframe_dts = first
        # a seek can land on a key frame shown after the first wanted frame (its dts is earlier than its
        # pts with B-frames): step back one key frame, unless this is already the start of the stream
        if first_pts <= limits[0] or keyframe_dts is None or keyframe_dts <= start or seek_pts <= start:
            break
        seek_pts = min(seek_pts, keyframe_dts) - 1
    found: list[np.ndarray] = []
    previous = None
    for pts, frame, _ in itertools.chain([first], frames):
        while len(found) < len(wanted) and pts > limits[len(found)]:
            # the frame before this one is the one on screen at wanted[len(found)]; a stream that
            # starts after the wanted time answers with its first frame
            found.append(_rgb(frame if previous is None else previous, size))
        if len(found) == len(wanted):
            return found
        previous = frame
    last_pts = previous.pts if previous.pts is not None else previous.dts
    for limit, index in zip(limits[len(found):], wanted[len(found):]):
        if limit - last_pts > (_END_TOLERANCE + Fraction(1, 2)) * period:
            seconds = float((last_pts - start) * time_base)
            reason = f"video ends at {seconds:.2f}s, before frame {index} (truncated or shorter than its header says)"
            raise DecodeError(path, reason)
        found.append(_rgb(previous, size))
    return found

