"""Classification losses on soft targets.

Single-label data: cross-entropy against a target distribution (one-hot, label-smoothed and/or mixed
by :class:`~vidgrid.engine.mixup.Mixer`), ``-Σ_k y_k log softmax(z)_k``. Multi-label data (Charades,
X3D supplement §A.2): per-class sigmoid binary cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-Σ_k y_k log softmax(z)_k``; ``targets`` ``(B, K)`` or class ids ``(B,)``."""
    if targets.ndim == 1:
        return F.cross_entropy(logits.float(), targets.long())
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def sigmoid_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean per-class binary cross-entropy with logits; ``targets`` ``float (B, K)`` in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def build_loss(multi_label: bool) -> Loss:
    """Sigmoid BCE for multi-label data, soft-target softmax cross-entropy otherwise."""
    return sigmoid_bce if multi_label else soft_target_cross_entropy
