"""RoIAlign in plain torch (He et al., "Mask R-CNN", ICCV 2017, §3 "RoIAlign"), with the pixel-model
correction of torchvision's ``roi_align(..., aligned=True)``.

A box ``(x1, y1, x2, y2)`` in input pixels becomes ``x · spatial_scale - 0.5`` on the feature map,
whose cell ``(i, j)`` has its centre at ``(j, i)``: the half-pixel shift aligns the box with the
feature cells' centres. The box is divided into ``out × out`` bins; each bin averages
``sampling_ratio²`` bilinear samples at regular positions inside it. A sample more than one cell
outside the map (``y < -1`` or ``y > H``) counts as 0; one in the last cell's outer half or the
first cell's outer half reads the border cell (as torchvision's kernel does). Boxes of any batch
element are done in one gather: ``rois`` rows are ``(batch index, x1, y1, x2, y2)``.
"""

from __future__ import annotations

import torch


def _axis(start: torch.Tensor, length: torch.Tensor, out: int, ratio: int) -> torch.Tensor:
    """(N, out·ratio) sample coordinates along one axis: bin b, sample s at ``start + (b + (s + ½)/ratio) · length/out``."""
    steps = (torch.arange(out * ratio, device=start.device, dtype=start.dtype) + 0.5) / ratio  # (out·ratio,)
    return start[:, None] + steps[None] * (length / out)[:, None]


def _bilinear_terms(coord: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    """Low index, high index, their weights and a validity mask of sample coordinates on an axis of ``size`` cells."""
    valid = (coord >= -1.0) & (coord <= size)
    c = coord.clamp(min=0.0)
    low = c.floor().clamp(max=size - 1)
    at_end = low >= size - 1
    high = torch.where(at_end, low, low + 1)
    c = torch.where(at_end, low, c)
    frac = c - low
    return low.long(), high.long(), 1.0 - frac, frac, valid


def roi_align(features: torch.Tensor, rois: torch.Tensor, *, output_size: int, spatial_scale: float,
              sampling_ratio: int = 2) -> torch.Tensor:
    """float (B, C, H, W) features, (N, 5) rois ``(b, x1, y1, x2, y2)`` in input pixels -> (N, C, out, out)."""
    b, c, h, w = features.shape
    n = rois.shape[0]
    if n == 0:
        return features.new_zeros(0, c, output_size, output_size)
    rois = rois.to(features.dtype)
    x1, y1 = rois[:, 1] * spatial_scale - 0.5, rois[:, 2] * spatial_scale - 0.5
    x2, y2 = rois[:, 3] * spatial_scale - 0.5, rois[:, 4] * spatial_scale - 0.5
    ys = _axis(y1, y2 - y1, output_size, sampling_ratio)  # (N, S) with S = out·ratio
    xs = _axis(x1, x2 - x1, output_size, sampling_ratio)  # (N, S)
    y_lo, y_hi, wy_lo, wy_hi, y_ok = _bilinear_terms(ys, h)
    x_lo, x_hi, wx_lo, wx_hi, x_ok = _bilinear_terms(xs, w)
    flat = features.permute(0, 2, 3, 1).reshape(b * h * w, c)  # (B, C, H, W) -> (B·H·W, C)
    base = rois[:, 0].long()[:, None, None] * (h * w)  # (N, 1, 1)
    mask = (y_ok[:, :, None] & x_ok[:, None, :]).to(features.dtype)  # (N, S, S)
    out = features.new_zeros(n, ys.shape[1], xs.shape[1], c)
    for yi, wy in ((y_lo, wy_lo), (y_hi, wy_hi)):
        for xi, wx in ((x_lo, wx_lo), (x_hi, wx_hi)):
            index = base + yi[:, :, None] * w + xi[:, None, :]  # (N, S, S)
            weight = (wy[:, :, None] * wx[:, None, :] * mask)[..., None]  # (N, S, S, 1)
            out = out + flat[index.flatten()].view(n, ys.shape[1], xs.shape[1], c) * weight
    # average the ratio × ratio samples of every bin: (N, out·r, out·r, C) -> (N, C, out, out)
    out = out.view(n, output_size, sampling_ratio, output_size, sampling_ratio, c).mean(dim=(2, 4))
    return out.permute(0, 3, 1, 2).contiguous()
