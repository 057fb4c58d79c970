"""RandAugment for video (Cubuk et al., 2020; used for video by the MultiTrain supplement's MViTv2 recipe).

Per clip, ``ops`` operations are drawn uniformly (with replacement) from :data:`OPS`, each with a
random sign where it has one, at magnitude ``magnitude`` in 0..10 — and that one sequence is applied
identically to every frame. Statistics-based ops (autocontrast, equalize, contrast) use the whole
clip's statistics, so identical frames stay identical and the clip does not flicker.

Layout: uint8 (T, H, W, C) in and out, like :mod:`vidgrid.data.transforms`; torch ops only.
Magnitude scale at m = 10: rotate 30°, shear 0.3, translate 45 % of the side, colour/contrast/
brightness/sharpness factor 1 ± 0.9, posterize to 4 bits, solarize threshold 0 (at m = 0: no-ops).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch
import torch.nn.functional as F

FILL = 128
"""Grey that geometric ops fill uncovered pixels with."""

MAX_MAGNITUDE = 10


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """b + factor·(a - b) on float copies, back to uint8: factor 0 gives b, 1 gives a."""
    return (b.float() + factor * (a.float() - b.float())).round_().clamp_(0, 255).to(torch.uint8)


def _grey(frames: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of uint8 (T, H, W, 3), float (T, H, W, 1)."""
    weights = torch.tensor([0.299, 0.587, 0.114])
    return (frames.float() * weights).sum(-1, keepdim=True)


def identity(frames: torch.Tensor, level: float) -> torch.Tensor:
    return frames


def _apply_luts(frames: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """Map each channel of uint8 (T, H, W, C) through its uint8 (C, 256) look-up table."""
    pixels = frames.reshape(-1, frames.shape[-1]).T.long()  # (C, T·H·W)
    return torch.gather(luts, 1, pixels).T.reshape(frames.shape)


def autocontrast(frames: torch.Tensor, level: float) -> torch.Tensor:
    """Stretch each channel's clip-wide [min, max] to [0, 255] (constant channels unchanged)."""
    low, high = frames.reshape(-1, frames.shape[-1]).T.contiguous().aminmax(dim=1)  # (C,), (C,)
    low, high = low.float()[:, None], high.float()[:, None]
    values = torch.arange(256.0).expand(len(low), 256)
    stretched = ((values - low) * 255 / (high - low).clamp(min=1)).round().clamp(0, 255)
    return _apply_luts(frames, torch.where(high > low, stretched, values).to(torch.uint8))


def equalize(frames: torch.Tensor, level: float) -> torch.Tensor:
    """Histogram equalisation per channel with one look-up table from the whole clip."""
    luts = []
    for channel in frames.reshape(-1, frames.shape[-1]).T:  # (T·H·W,) per channel
        hist = torch.bincount(channel.long(), minlength=256)
        nonzero = hist[hist > 0]
        step = (nonzero.sum() - nonzero[-1]) // 255
        if step == 0:
            luts.append(torch.arange(256))
        else:
            luts.append(((torch.cumsum(hist, 0) - hist + step // 2) // step).clamp(0, 255))
    return _apply_luts(frames, torch.stack(luts).to(torch.uint8))


def solarize(frames: torch.Tensor, level: float) -> torch.Tensor:
    """Invert pixels at or above the threshold 256·(1 - level)."""
    threshold = 256 * (1 - level)
    return torch.where(frames >= threshold, 255 - frames, frames)


def posterize(frames: torch.Tensor, level: float) -> torch.Tensor:
    """Keep the top 8 - round(4·level) bits."""
    bits = 8 - round(4 * level)
    mask = (0xFF << (8 - bits)) & 0xFF
    return frames & mask


def color(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Saturation: blend with the grey image."""
    return _blend(frames, _grey(frames).expand_as(frames), factor)


def contrast(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the clip's mean grey level."""
    return _blend(frames, _grey(frames).mean().expand_as(frames), factor)


def brightness(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with black."""
    return _blend(frames, torch.zeros_like(frames), factor)


def sharpness(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with a 3×3 smoothed copy (border pixels unchanged)."""
    t, h, w, c = frames.shape
    if h < 3 or w < 3:
        return frames
    x = frames.permute(0, 3, 1, 2).reshape(t * c, 1, h, w).float()  # (T, H, W, C) -> (T·C, 1, H, W)
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = F.conv2d(x, kernel.view(1, 1, 3, 3))
    smooth = smooth.reshape(t, c, h, w).permute(0, 2, 3, 1)  # (T·C, 1, H, W) -> (T, H, W, C)
    return _blend(frames, smooth, factor)


def _affine(frames: torch.Tensor, matrix: list[list[float]]) -> torch.Tensor:
    """Warp every frame with one 2×3 matrix in normalised [-1, 1] coordinates (output -> input)."""
    t, h, w, c = frames.shape
    theta = torch.tensor(matrix, dtype=torch.float32).unsqueeze(0).expand(t, 2, 3)
    grid = F.affine_grid(theta, [t, c, h, w], align_corners=False)
    x = frames.permute(0, 3, 1, 2).float() - FILL  # (T, H, W, C) -> (T, C, H, W), fill value -> 0
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + FILL
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # -> (T, H, W, C)


def rotate(frames: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre by ``degrees`` (counter-clockwise on screen for positive values)."""
    h, w = frames.shape[1:3]
    a = math.radians(degrees)
    # sampling maps output to input pixels; the aspect terms keep the rotation rigid on non-square frames
    return _affine(frames, [[math.cos(a), -math.sin(a) * h / w, 0.0], [math.sin(a) * w / h, math.cos(a), 0.0]])


def shear_x(frames: torch.Tensor, amount: float) -> torch.Tensor:
    h, w = frames.shape[1:3]
    return _affine(frames, [[1.0, amount * h / w, 0.0], [0.0, 1.0, 0.0]])


def shear_y(frames: torch.Tensor, amount: float) -> torch.Tensor:
    h, w = frames.shape[1:3]
    return _affine(frames, [[1.0, 0.0, 0.0], [amount * w / h, 1.0, 0.0]])


def translate_x(frames: torch.Tensor, fraction: float) -> torch.Tensor:
    """Shift right by ``fraction`` of the width."""
    return _affine(frames, [[1.0, 0.0, -2 * fraction], [0.0, 1.0, 0.0]])


def translate_y(frames: torch.Tensor, fraction: float) -> torch.Tensor:
    """Shift down by ``fraction`` of the height."""
    return _affine(frames, [[1.0, 0.0, 0.0], [0.0, 1.0, -2 * fraction]])


# name -> (op, argument at level 1.0 (m = 10), whether the argument takes a random sign, is a factor 1 ± x)
OPS: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor], float, bool, bool]] = {
    "identity": (identity, 0.0, False, False),
    "autocontrast": (autocontrast, 0.0, False, False),
    "equalize": (equalize, 0.0, False, False),
    "rotate": (rotate, 30.0, True, False),
    "solarize": (solarize, 1.0, False, False),
    "color": (color, 0.9, True, True),
    "posterize": (posterize, 1.0, False, False),
    "contrast": (contrast, 0.9, True, True),
    "brightness": (brightness, 0.9, True, True),
    "sharpness": (sharpness, 0.9, True, True),
    "shear_x": (shear_x, 0.3, True, False),
    "shear_y": (shear_y, 0.3, True, False),
    "translate_x": (translate_x, 0.45, True, False),
    "translate_y": (translate_y, 0.45, True, False),
}


def sample_ops(ops: int, magnitude: float, rng: random.Random) -> list[tuple[str, float]]:
    """Draw one clip's op sequence: ``ops`` (name, argument) pairs at ``magnitude`` (0..10)."""
    level = magnitude / MAX_MAGNITUDE
    chosen = []
    for name in rng.choices(list(OPS), k=ops):
        _, top, signed, is_factor = OPS[name]
        arg = top * level
        if signed and rng.random() < 0.5:
            arg = -arg
        chosen.append((name, 1.0 + arg if is_factor else arg))
    return chosen


def apply_ops(frames: torch.Tensor, ops: list[tuple[str, float]]) -> torch.Tensor:
    """Apply a sequence from :func:`sample_ops` to every frame of uint8 (T, H, W, C)."""
    for name, arg in ops:
        frames = OPS[name][0](frames, arg)
    return frames


def rand_augment(frames: torch.Tensor, ops: int, magnitude: float, rng: random.Random) -> torch.Tensor:
    """RandAugment(n=``ops``, m=``magnitude``) with one op sequence for the whole clip."""
    return apply_ops(frames, sample_ops(ops, magnitude, rng))
