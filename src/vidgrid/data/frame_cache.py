"""Decoded training videos kept in memory (``data.cache_gb``), for training sets small enough to hold.

A clip decodes its whole span (from the key frame before it), so a training epoch costs a decode per
clip whatever the clip's shape. On a small set that is most of multigrid's coarse epochs on a CPU:
their clips are cheap to compute but not to decode. With a cache, each video is decoded once, every
frame of it, and later clips index the kept frames: the same pixels as decoding the clip alone.

The cache is per process: each DataLoader worker fills its own (they are forked with it empty). A
video is kept when all its frames fit in what is left of the budget (its size is known from its header,
before decoding anything); the others are decoded clip by clip as without the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from vidgrid.data.decode import DecodeError, decode_frames


class DecodedVideoCache:
    """Every frame of each video served so far, while they fit in ``budget_bytes`` in this process."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._videos: dict[str, torch.Tensor] = {}
        self._undecodable: set[str] = set()  # the whole video fails to decode: its clips are decoded alone

    def frames(self, path: str | Path, num_frames: int, indices: Sequence[int], frame_bytes: int) -> torch.Tensor:
        """uint8 (len(indices), H, W, 3): the frames ``indices`` of a video of ``num_frames`` frames of
        ``frame_bytes`` each (H·W·3, from its header), as :func:`~vidgrid.data.decode.decode_frames`
        gives them (and with its errors)."""
        key = str(path)
        video = self._videos.get(key)
        if video is None and key not in self._undecodable and self.used_bytes + num_frames * frame_bytes <= self.budget_bytes:
            try:
                video = decode_frames(path, range(num_frames), threads=1)
            except DecodeError:  # e.g. a header that promises more frames than the stream holds
                self._undecodable.add(key)
            else:
                self._videos[key] = video
                self.used_bytes += video.nbytes
        if video is not None:
            return video[list(indices)]
        return decode_frames(path, indices, threads=1)
