"""Clip decoding: the frames returned are the ones asked for; broken files give a clear DecodeError."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.data.conftest import index_frames, read_index
from vidgrid.data.decode import DecodeError, decode_frames, probe_video
from vidgrid.data.encode import write_video


def test_probe(make_index_video) -> None:
    path = make_index_video(frames=45, fps=15, size=32)
    info = probe_video(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (45, 15.0, 32, 32)
    assert info.duration == pytest.approx(3.0, abs=0.07)


@pytest.mark.parametrize("keyint", [None, 8])
def test_decoded_frames_are_the_requested_ones(make_index_video, keyint: int | None) -> None:
    """Random, unsorted, repeated indices, with B-frames and seeks that land near key frames."""
    path = make_index_video(frames=64, keyint=keyint)
    assert read_index(decode_frames(path, range(64))) == list(range(64))
    rng = random.Random(0)
    for _ in range(40):
        indices = [rng.randrange(64) for _ in range(rng.randint(1, 5))]
        assert read_index(decode_frames(path, indices, threads=rng.choice([0, 1]))) == indices
    # every frame alone: a key frame's dts comes before the previous frame's pts, so the seek steps back
    assert [read_index(decode_frames(path, [i]))[0] for i in range(0, 64, 3)] == list(range(0, 64, 3))


def test_decodes_only_from_the_previous_key_frame_to_the_last_wanted_frame(make_index_video, monkeypatch) -> None:
    """Seek to the key frame before the first index, stop right after the last one."""
    import vidgrid.data.decode as decode

    path = make_index_video(frames=96, keyint=16)
    decoded: list[int] = []
    original = decode._frames_from

    def counting(*args):
        for item in original(*args):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(decode, "_frames_from", counting)
    assert read_index(decode_frames(path, [53, 50], threads=1)) == [53, 50]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keyframes = sorted(round(p.pts * stream.time_base * 30) for p in container.demux(stream) if p.is_keyframe)
    start = max(k for k in keyframes if k <= 50)
    assert start > 0
    assert len(decoded) == 53 - start + 2  # from the key frame to one frame past the last wanted one


def test_output_layout(make_index_video) -> None:
    clip = decode_frames(make_index_video(size=32), [3, 3, 0])
    assert clip.dtype == torch.uint8 and clip.shape == (3, 32, 32, 3)


def test_odd_sizes_are_cropped_to_even(tmp_path: Path) -> None:
    write_video(tmp_path / "odd.mp4", index_frames(4, 33, 35), 10)
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (34, 32)


def write_with_pts(path: Path, times_ms: list[int], codec: str = "libx264") -> None:
    """A video whose frame k (encoding k) is shown at ``times_ms[k]`` (variable frame rate)."""
    frames = index_frames(len(times_ms), 32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for image, t in zip(frames, times_ms):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = t
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_variable_frame_rate_maps_indices_through_time(tmp_path: Path) -> None:
    """30 fps for 1 s then 15 fps for 1 s: index i is the frame on screen at i / average fps."""
    times = [round(k * 1000 / 30) for k in range(30)] + [1000 + round(k * 1000 / 15) for k in range(15)]
    path = tmp_path / "vfr.mp4"
    write_with_pts(path, times)
    info = probe_video(path)
    assert info.num_frames == 45
    got = read_index(decode_frames(path, range(info.num_frames)))
    on_screen = [max(k for k, t in enumerate(times) if t / 1000 <= (i + 0.5) / info.fps) for i in range(45)]
    assert got == on_screen
    assert got != list(range(45))  # time-based, not plain frame counting


def test_webm_without_frame_count_in_header(tmp_path: Path) -> None:
    path = tmp_path / "v.webm"
    write_with_pts(path, [round(k * 1000 / 30) for k in range(20)], codec="libvpx-vp9")
    info = probe_video(path)
    assert info.num_frames == 20 and info.fps == pytest.approx(30)
    assert read_index(decode_frames(path, [19, 0, 7, 7])) == [19, 0, 7, 7]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "missing file"),
        (b"", "zero-length file"),
        (b"\x00garbage" * 100, "not a readable video container"),
    ],
)
def test_broken_files(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "broken.mp4"
    if content is not None:
        path.write_bytes(content)
    for call in (lambda: probe_video(path), lambda: decode_frames(path, [0])):
        with pytest.raises(DecodeError, match=reason) as info:
            call()
        assert info.value.path == str(path) and reason in info.value.reason


def test_truncated_file(make_index_video) -> None:
    """An MP4 cut in half has lost its index (written at the end): unreadable."""
    path = make_index_video(frames=48)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="not a readable video container"):
        probe_video(path)


def test_index_past_the_end_is_reported(tmp_path: Path) -> None:
    """A header that promises more frames than the stream holds (truncated data) is a DecodeError."""
    path = tmp_path / "short.mp4"
    write_with_pts(path, [round(k * 1000 / 30) for k in range(10)])
    assert read_index(decode_frames(path, [9])) == [9]
    with pytest.raises(DecodeError, match="before frame 40"):
        decode_frames(path, [2, 40])


def test_bad_arguments(index_video: Path) -> None:
    with pytest.raises(ValueError, match="^decode_frames needs at least one index$"):
        decode_frames(index_video, [])
    with pytest.raises(ValueError, match="^negative frame index -1$"):
        decode_frames(index_video, [-1])
    with pytest.raises(ValueError, match=r"^frames must be uint8 \(T, H, W, 3\), got uint8 \(2, 8, 8\)$"):
        write_video(index_video, np.zeros((2, 8, 8), np.uint8), 10)
