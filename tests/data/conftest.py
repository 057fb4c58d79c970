"""Shared fixtures for the data tests: tiny H.264 videos whose frames encode their own index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from vidgrid.data.encode import write_video


def index_frames(num_frames: int, size: int = 32, width: int | None = None) -> np.ndarray:
    """uint8 (T, H, W, 3) flat frames whose colour encodes the frame index (up to 256 frames).

    Red carries ``index % 16`` and green ``index // 16`` in steps of 16 grey levels, which survives
    H.264 compression and the RGB <-> YUV round trip (errors stay below 8 levels).
    """
    index = np.arange(num_frames)
    frames = np.zeros((num_frames, size, width or size, 3), np.uint8)
    frames[..., 0] = (16 * (index % 16) + 8)[:, None, None]
    frames[..., 1] = (16 * (index // 16) + 8)[:, None, None]
    frames[..., 2] = 128
    return frames


def read_index(frames: torch.Tensor | np.ndarray) -> list[int]:
    """Frame indices encoded by :func:`index_frames`, from decoded uint8 (T, H, W, 3) frames."""
    array = np.asarray(frames, dtype=np.float64)
    red = array[..., 0].mean(axis=(1, 2))
    green = array[..., 1].mean(axis=(1, 2))
    return [int(round((g - 8) / 16)) * 16 + int(round((r - 8) / 16)) for r, g in zip(red, green)]


@pytest.fixture
def make_index_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make_index_video(name="v.mp4", frames=48, fps=30, keyint=8, size=32) -> Path``.

    Writes an H.264 MP4 under ``tmp_path`` whose frame i shows colour code i (see :func:`read_index`).
    """

    def make(name: str = "v.mp4", frames: int = 48, fps: float = 30, keyint: int | None = 8, size: int = 32) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, index_frames(frames, size), fps, keyint=keyint)
        return path

    return make


@pytest.fixture
def index_video(make_index_video: Callable[..., Path]) -> Path:
    """A 48-frame, 30 fps, 32×32 H.264 MP4 with a key frame every 8 frames; frame i encodes i."""
    return make_index_video()
