"""Encoding: the same frames always give the same file, so synthetic datasets are reproducible."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from vidgrid.data.encode import write_video
from vidgrid.data.synthetic_classes import render_video


def test_the_same_frames_always_encode_to_the_same_file(tmp_path: Path) -> None:
    """A synthetic dataset is reproducible byte for byte: encoding the same frames again, after the
    process has allocated and freed other memory, gives the same file (x264's macroblock tree, on by
    default, gave up to four different files here)."""
    frames = render_video("grow", np.random.default_rng((0, 0, 4, 3)), frames=32, width=64, height=64)
    rng = np.random.default_rng(0)
    digests = set()
    for i in range(8):
        churn = [rng.integers(0, 255, size=int(rng.integers(1_000, 200_000)), dtype=np.uint8).tobytes() for _ in range(20)]
        del churn
        path = tmp_path / f"grow_{i}.mp4"
        write_video(path, frames, 16, keyint=16, crf=18)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
