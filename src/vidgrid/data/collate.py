"""Batching of clips whose frame sizes differ: whole-frame test views of videos with different aspect
ratios (detection tests on the whole frame at the test short side)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate


def pad_collate(items: Sequence[tuple[Any, ...]]) -> Any:
    """``default_collate`` after zero-padding the first field of every item (a uint8 clip ``(..., H, W)``)
    at the bottom and right to the batch's largest H and W; boxes in pixels from the top-left corner
    keep their place. Items of one size are batched unchanged."""
    clips = [item[0] for item in items]
    if not all(isinstance(c, torch.Tensor) for c in clips) or len({tuple(c.shape) for c in clips}) <= 1:
        return default_collate(items)
    height, width = max(c.shape[-2] for c in clips), max(c.shape[-1] for c in clips)
    padded = [F.pad(c, (0, width - c.shape[-1], 0, height - c.shape[-2])) for c in clips]
    return default_collate([(clip, *item[1:]) for clip, item in zip(padded, items)])
