"""Spatial clip transforms on uint8 tensors (multigrid paper §3.2 "spatial grids", §4; practitioner's notes, MultiTrain supplement).

Layout: every transform takes and returns **uint8 (T, H, W, C)** — the decoder's layout — and
:func:`to_model_layout` turns the result into the uint8 **(C, T, H, W)** clip the datasets return.
Resizing is bilinear (antialiased when shrinking) on float copies, rounded back to uint8.
Randomness comes in as a ``random.Random`` the caller seeds; one draw per clip, so every frame of
a clip gets the same crop and flip.

Training crops are cut in source pixels and resized once, which equals "resize, then crop" (the
multigrid "resize a random crop to the desired shape", §3.2) at a fraction of the cost.
"""

from __future__ import annotations

import math
import random
from typing import Literal

import torch
import torch.nn.functional as F

Box = tuple[int, int, int, int]
"""A crop box (top, left, height, width) in pixels."""


def to_model_layout(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, C) -> contiguous uint8 (C, T, H, W)."""
    return frames.permute(3, 0, 1, 2).contiguous()


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of uint8 (T, H, W, C) to (T, height, width, C)."""
    t, h, w, c = frames.shape
    if (h, w) == (height, width):
        return frames
    x = frames.permute(0, 3, 1, 2).float()  # (T, H, W, C) -> (T, C, H, W)
    shrink = height < h or width < w
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # (T, C, h, w) -> (T, h, w, C)


def crop(frames: torch.Tensor, box: Box) -> torch.Tensor:
    """The (top, left, height, width) region of uint8 (T, H, W, C) (a view)."""
    top, left, height, width = box
    return frames[:, top : top + height, left : left + width]


def short_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(h, w) after scaling the shorter side to ``short`` with the aspect ratio kept."""
    if height <= width:
        return short, max(short, round(width * short / height))
    return max(short, round(height * short / width)), short


def resize_short_side(frames: torch.Tensor, short: int) -> torch.Tensor:
    """Resize uint8 (T, H, W, C) so its shorter side is ``short``."""
    return resize(frames, *short_side_size(frames.shape[1], frames.shape[2], short))


def jitter_range(crop_size: int, base_crop: int, min_short: int, max_short: int) -> tuple[int, int]:
    """Short-side jitter interval [round(min_short·s/S), round(max_short·s/S)] for crop s of base crop
    S, at least s: the recipe's interval scaled by s/S, so a crop of any size spans the same share of
    the frame as the base crop, on a coarser grid (multigrid paper §3.1: a grid is a span and a stride).

    The paper's implementation (§4, "Multigrid Training Details") scales only the lower end,
    [256·s/S, 340], which adds windows the recipe never trained on, down to s/340 of the short side
    (a third for s = 112). Kinetics' actions mostly fill the frame; where the evidence is an object
    somewhere in the frame, those windows often miss it and the coarse shapes train on noise. A 64²
    base on 160×120 static shapes: 41.0% top-1 (2 seeds) with the paper's interval, 48.0% with this.
    """
    scale = crop_size / base_crop
    low = max(crop_size, round(min_short * scale))
    return low, max(low, round(max_short * scale))


def rescale_crop_box(height: int, width: int, crop_size: int, short: int, rng: random.Random) -> Box:
    """Source box that becomes a random ``crop_size``² crop after rescaling the short side to ``short``."""
    side = min(min(height, width), max(1, round(crop_size * min(height, width) / short)))
    return rng.randint(0, height - side), rng.randint(0, width - side), side, side


def random_rescale_crop(
    frames: torch.Tensor, crop_size: int, short_range: tuple[int, int], rng: random.Random
) -> tuple[torch.Tensor, Box]:
    """RandomRescale + RandomCrop: short side uniform in ``short_range``, then a random s×s crop;
    also the source box that was cut."""
    short = rng.randint(*short_range)
    box = rescale_crop_box(frames.shape[1], frames.shape[2], crop_size, short, rng)
    return resize(crop(frames, box), crop_size, crop_size), box


def resized_crop_box(
    height: int,
    width: int,
    rng: random.Random,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Box:
    """Inception-style box: area fraction uniform in ``scale``, log-uniform aspect in ``ratio``.

    Ten tries, then the largest centred box whose aspect lies in ``ratio``.
    """
    area = height * width
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(log_low, log_high))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(frames: torch.Tensor, crop_size: int, rng: random.Random) -> tuple[torch.Tensor, Box]:
    """RandomResizedCrop (scale 0.08–1, ratio 3/4–4/3) of uint8 (T, H, W, C) to s×s; also the source box that was cut."""
    box = resized_crop_box(frames.shape[1], frames.shape[2], rng)
    return resize(crop(frames, box), crop_size, crop_size), box


def random_hflip(frames: torch.Tensor, rng: random.Random) -> tuple[torch.Tensor, bool]:
    """Mirror every frame of uint8 (T, H, W, C) left-right with probability 1/2; also whether it did."""
    flip = rng.random() < 0.5
    return (frames.flip(2) if flip else frames), flip


def eval_crop_boxes(height: int, width: int, crop_size: int, crops: Literal[0, 1, 3]) -> list[Box]:
    """1 centre crop, 3 crops along the long side: left/centre/right (landscape), top/centre/bottom
    (portrait), or 0: the whole frame (not square)."""
    if crops == 0:
        return [(0, 0, height, width)]
    if crop_size > min(height, width):
        raise ValueError(f"crop {crop_size} larger than the frame {height}x{width}")
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    if crops == 1:
        return [(top, left, crop_size, crop_size)]
    if width >= height:
        return [(top, x, crop_size, crop_size) for x in (0, left, width - crop_size)]
    return [(y, left, crop_size, crop_size) for y in (0, top, height - crop_size)]
