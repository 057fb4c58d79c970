"""Multi-label classification (Charades, multigrid paper §7, X3D supplement §A.2): any number of
classes per video.

Per-class sigmoid binary cross-entropy; a video's score per class is the max over its views of the
sigmoid ("temporally max-pooled prediction scores", X3D supplement §A.2); metrics mAP over the
classes with a positive, plus hit@1 / hit@5 (the top-k scores contain a true class) as ``top1`` /
``top5``; the best checkpoint has the highest mAP. Label smoothing is per class: ``y·(1-ε) + ε/2``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vidgrid.data.annotations import Sample
from vidgrid.tasks.base import register_task
from vidgrid.tasks.classification import Classification
from vidgrid.tasks.metrics import mean_average_precision, topk_hit_multilabel


@register_task
class MultiLabelClassification(Classification):
    """Multi-hot targets; also usable on single-label data (``task.name=multi_label``)."""

    name = "multi_label"
    best_metric = "mAP"
    multi_label_variant = None

    def target(self, sample: Sample) -> torch.Tensor:
        """float multi-hot ``(K,)`` of the sample's labels (its single label for single-label data)."""
        target = torch.zeros(self.num_outputs)
        target[list(sample.labels) if sample.label < 0 else [sample.label]] = 1.0
        return target

    def soft_targets(self, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        return targets.float() * (1.0 - smoothing) + 0.5 * smoothing

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean per-class binary cross-entropy with logits; ``targets`` ``float (B, K)`` in [0, 1]."""
        return F.binary_cross_entropy_with_logits(outputs.float(), targets.float())

    def aggregate_views(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(B, V, K)`` logits → max over views of the per-class sigmoid ``(B, K)``."""
        return torch.sigmoid(outputs.float()).amax(dim=1)

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        scores, targets = scores.float().cpu(), targets.cpu()
        hit = topk_hit_multilabel(scores, targets)
        return {"mAP": mean_average_precision(scores, targets), "top1": hit[1], "top5": hit[5]}

    def empty_metrics(self) -> dict[str, float]:
        return {"mAP": 0.0, "top1": 0.0, "top5": 0.0}

    def label(self, target: torch.Tensor) -> list[str]:
        return [self.classes[k] for k in torch.nonzero(target > 0.5).flatten().tolist()]

    def write_plots(self, out_dir: Path, scores: torch.Tensor, targets: torch.Tensor) -> list[Path]:
        return []  # a confusion matrix needs one true class per video

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``mAP 31.2% · top-1 ... · top-5 ...`` (hit@k)."""
        return f"mAP {100 * metrics['mAP']:.1f}% · top-1 {100 * metrics['top1']:.1f}% · top-5 {100 * metrics['top5']:.1f}%"
