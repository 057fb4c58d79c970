"""Box overlap, the generalized IoU and its loss (Rezatofighi et al., CVPR 2019, Alg. 1; practitioner's
notes, "Loss quantization — GIoU").

Boxes are ``(x1, y1, x2, y2)`` with the origin at the top-left pixel (the practitioner's box-format
note), in any unit as long as both sides share it. For boxes A, B and C the smallest box enclosing
both, ``GIoU = IoU - |C \\ (A ∪ B)| / |C|``, in (-1, 1]; ``giou_loss = 1 - GIoU``, in [0, 2).

Zero-area boxes are legal input: every division has ``eps`` added to its denominator, so values and
gradients stay finite (two identical points have IoU 0, not NaN).
"""

from __future__ import annotations

import torch

EPS = 1e-7


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` boxes -> ``(...)`` areas (negative extents count as 0)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _iou_parts(a: torch.Tensor, b: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and enclosing-box area of broadcastable ``(..., 4)`` boxes."""
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = box_area(a) + box_area(b) - inter
    iou = inter / (union + eps)
    enclosing = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0).prod(dim=-1)
    return iou, (enclosing - union) / (enclosing + eps)


def box_iou(a: torch.Tensor, b: torch.Tensor, *, pairwise: bool = False, eps: float = EPS) -> torch.Tensor:
    """IoU of ``(N, 4)`` and ``(N, 4)`` boxes element-wise ``(N,)``, or of ``(N, 4)`` × ``(M, 4)``
    pairwise ``(N, M)``."""
    a, b = _pair(a, b, pairwise)
    return _iou_parts(a, b, eps)[0]


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor, *, pairwise: bool = False, eps: float = EPS) -> torch.Tensor:
    """GIoU of ``(N, 4)`` and ``(N, 4)`` boxes element-wise ``(N,)``, or of ``(N, 4)`` × ``(M, 4)``
    pairwise ``(N, M)``: ``IoU - (|C| - |A ∪ B|) / |C|``."""
    a, b = _pair(a, b, pairwise)
    iou, empty_share = _iou_parts(a, b, eps)
    return iou - empty_share


def giou_loss(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = EPS) -> torch.Tensor:
    """Mean over the batch of ``1 - GIoU`` of ``(N, 4)`` element-wise box pairs."""
    return (1.0 - generalized_box_iou(predicted.float(), target.float(), eps=eps)).mean()


def l1_box_loss(predicted: torch.Tensor, target: torch.Tensor, size: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Mean absolute coordinate error of ``(N, 4)`` boxes divided by ``size`` (the crop side: boxes in
    pixels become crop-normalised; 1 for boxes already normalised)."""
    return ((predicted.float() - target.float()).abs() / size).mean()


def _pair(a: torch.Tensor, b: torch.Tensor, pairwise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 4)``, ``(M, 4)`` -> broadcastable ``(N, 1, 4)``, ``(1, M, 4)`` when ``pairwise``."""
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"boxes must be (..., 4) (x1, y1, x2, y2), got {tuple(a.shape)} and {tuple(b.shape)}")
    if pairwise:
        return a[:, None, :], b[None, :, :]
    if a.shape != b.shape:
        raise ValueError(f"element-wise boxes need equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b
