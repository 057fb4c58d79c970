"""RoIAlign in plain torch (He et al., "Mask R-CNN", ICCV 2017, §3 "RoIAlign"), with the pixel-model
correction of torchvision's ``roi_align(..., aligned=True)``.

A box ``(x1, y1, x2, y2)`` in input pixels becomes ``x · spatial_scale - 0.5`` on the feature map,
whose cell ``(i, j)`` has its centre at ``(j, i)``: the half-pixel shift aligns the box with the
feature cells' centres. The box is divided into ``out × out`` bins; each bin averages
``sampling_ratio²`` bilinear samples at regular positions inside it. A sample more than one cell
outside the map (``y < -1`` or ``y > H``) counts as 0; one in the last cell's outer half or the
first cell's outer half reads the border cell (as torchvision's kernel does). Boxes of any batch
element are done together: ``rois`` rows are ``(batch index, x1, y1, x2, y2)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _axis(start: torch.Tensor, length: torch.Tensor, out: int, ratio: int) -> torch.Tensor:
    """(N, out·ratio) sample coordinates along one axis: bin b, sample s at ``start + (b + (s + ½)/ratio) · length/out``."""
    steps = (torch.arange(out * ratio, device=start.device, dtype=start.dtype) + 0.5) / ratio  # (out·ratio,)
    return start[:, None] + steps[None] * (length / out)[:, None]


def _axis_weights(coord: torch.Tensor, size: int, out: int, ratio: int) -> torch.Tensor:
    """(N, out·ratio) sample coordinates on an axis of ``size`` cells -> (N, out, size) interpolation
    weights: each bin's mean over its samples of the linear weights of the two cells around a sample."""
    valid = ((coord >= -1.0) & (coord <= size)).to(coord.dtype)
    c = coord.clamp(min=0.0)
    low = c.floor().clamp(max=size - 1)
    at_end = low >= size - 1
    high = torch.where(at_end, low, low + 1)
    frac = torch.where(at_end, torch.zeros_like(c), c - low)
    weights = (F.one_hot(low.long(), size) * ((1.0 - frac) * valid)[..., None]
               + F.one_hot(high.long(), size) * (frac * valid)[..., None])  # (N, out·ratio, size)
    return weights.view(coord.shape[0], out, ratio, size).mean(dim=2)


def roi_align(features: torch.Tensor, rois: torch.Tensor, *, output_size: int, spatial_scale: float,
              sampling_ratio: int = 2) -> torch.Tensor:
    """float (B, C, H, W) features, (N, 5) rois ``(b, x1, y1, x2, y2)`` in input pixels -> (N, C, out, out).

    Bilinear sampling is separable (a sample's weight on cell (i, j) is ``wy_i · wx_j``, and it is 0
    outside the map when either coordinate is), and so is the mean over a bin's samples: every box is
    ``Wy · F · Wxᵀ`` with per-box (out, H) and (out, W) weight matrices: per image one matrix product
    for all its boxes' columns, then one batched product for the rows."""
    b, c, h, w = features.shape
    if rois.shape[0] == 0:
        return features.new_zeros(0, c, output_size, output_size)
    rois = rois.to(features.dtype)
    x1, y1 = rois[:, 1] * spatial_scale - 0.5, rois[:, 2] * spatial_scale - 0.5
    x2, y2 = rois[:, 3] * spatial_scale - 0.5, rois[:, 4] * spatial_scale - 0.5
    wy = _axis_weights(_axis(y1, y2 - y1, output_size, sampling_ratio), h, output_size, sampling_ratio)  # (N, out, H)
    wx = _axis_weights(_axis(x1, x2 - x1, output_size, sampling_ratio), w, output_size, sampling_ratio)  # (N, out, W)
    n, out = rois.shape[0], output_size
    image = rois[:, 0].long()
    order = torch.argsort(image, stable=True)  # boxes grouped by image: one matrix product per image
    pooled, start = [], 0
    for b_index, count in zip(*(t.tolist() for t in torch.unique_consecutive(image[order], return_counts=True))):
        mine = order[start : start + count]
        start += count
        columns = features[b_index].reshape(c * h, w) @ wx[mine].reshape(count * out, w).T  # (C·H, W) @ (W, n·out)
        columns = columns.view(c, h, count, out).permute(2, 1, 0, 3).reshape(count, h, c * out)  # -> (n, H, C·out)
        pooled.append(torch.bmm(wy[mine], columns))  # (n, out, H) @ (n, H, C·out) -> (n, out, C·out)
    result = torch.cat(pooled)[torch.argsort(order)]  # back to the rois' order
    return result.view(n, out, c, out).transpose(1, 2).contiguous()  # (N, out, C·out) -> (N, C, out, out)
