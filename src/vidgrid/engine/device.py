"""Device-side input preparation shared by training, evaluation and prediction.

Datasets return ``uint8`` clips; they are moved to the device as bytes (4× less traffic than
float32) and only there converted and normalised, once, by :func:`normalize_clip`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def normalize_clip(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``uint8 (..., C, T, H, W)`` in [0, 255] → ``float32 (..., C, T, H, W)`` standardised per channel.

    ``mean`` and ``std`` are per-channel statistics of pixels scaled to [0, 1] (Kinetics: 0.45, 0.225).
    Works for training batches ``(B, C, T, H, W)`` and test views ``(B, V, C, T, H, W)`` alike: the
    channel axis is always the fourth from the end.
    """
    if x.ndim < 4:
        raise ValueError(f"expected (..., C, T, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[-4]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(channels, 1, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(channels, 1, 1, 1) * 255.0
    return (x.float() - m) / s  # (x / 255 - mean) / std in one pass

