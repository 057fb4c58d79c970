"""Classification metrics from video-level scores (all fractions in 0–1), shared by the tasks.

Single-label (Kinetics, SSv2): top-1 / top-5 accuracy, mean class accuracy (mean of per-class
recall over classes present), the confusion matrix. Multi-label (Charades, multigrid paper §7):
mean average precision over classes with at least one positive, plus hit@1 / hit@5 (the top-k
scores contain a true class) reported as ``top1`` / ``top5``.
"""

from __future__ import annotations

import torch


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of rows of ``scores (N, K)`` whose true class ``targets (N,)`` is among the k best
    (k is capped at K)."""
    if scores.shape[0] == 0:
        return {k: 0.0 for k in ks}
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices  # (N, kmax), best first
    hits = top == targets.view(-1, 1)
    return {k: hits[:, :k].any(dim=1).float().mean().item() for k in ks}


def topk_hit_multilabel(scores: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose k best classes contain at least one positive of ``targets (N, K)``."""
    if scores.shape[0] == 0:
        return {k: 0.0 for k in ks}
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    positive = targets.gather(1, top) > 0.5  # (N, kmax)
    return {k: positive[:, :k].any(dim=1).float().mean().item() for k in ks}


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``int64 (K, K)``: row = true class, column = predicted class."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def mean_class_accuracy(confusion: torch.Tensor) -> float:
    """Mean over classes that occur of (correct / occurrences), from a confusion matrix."""
    support = confusion.sum(dim=1)
    present = support > 0
    if not present.any():
        return 0.0
    recall = confusion.diag()[present].double() / support[present].double()
    return recall.mean().item()


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """AP of one class: ``Σ_k (R_k - R_{k-1}) · P_k`` over the distinct scores, highest first, where
    ``P_k`` and ``R_k`` are precision and recall of the videos scored at least the k-th score. Tied
    videos share one threshold, so the order of the list never matters (the definition of
    scikit-learn's ``average_precision_score``, which PySlowFast's Charades mAP uses); without ties
    it is the mean precision at the rank of each positive."""
    order = scores.argsort(descending=True, stable=True)
    ranked, hits = scores[order], positives[order].double()
    total = hits.sum()
    if total == 0:
        return float("nan")
    last_of_tie = torch.ones(len(ranked), dtype=torch.bool)
    last_of_tie[:-1] = ranked[1:] != ranked[:-1]  # where a threshold's run of equal scores ends
    true_positives = hits.cumsum(0)[last_of_tie]
    precision = true_positives / (torch.nonzero(last_of_tie).flatten() + 1).double()
    recall_gain = torch.diff(true_positives, prepend=true_positives.new_zeros(1)) / total
    return (recall_gain * precision).sum().item()


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """mAP of ``scores (N, K)`` against multi-hot ``targets (N, K)``, over classes with a positive."""
    aps = [average_precision(scores[:, k], targets[:, k] > 0.5) for k in range(scores.shape[1])]
    valid = [a for a in aps if a == a]  # drop classes without positives (NaN)
    return sum(valid) / len(valid) if valid else 0.0
