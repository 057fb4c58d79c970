"""Single-label classification (Kinetics, Something-Something): one class per video.

Softmax cross-entropy against soft targets ``-Σ_k y_k log softmax(z)_k`` (one-hot, label-smoothed
and/or mixed by Mixup / CutMix); a video's score is the mean of its views' softmax (multigrid paper
§4 and the MultiTrain supplement: "we average the softmax scores across all clips"); metrics top-1,
top-5 and mean class accuracy, the confusion matrix as ``confusion.png``; the best checkpoint has the
highest top-1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vidgrid.data.annotations import Sample
from vidgrid.errors import DataError
from vidgrid.tasks.base import Task, register_task
from vidgrid.tasks.metrics import confusion_matrix, mean_class_accuracy, topk_accuracy

CONFUSION_FILE = "confusion.png"


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-Σ_k y_k log softmax(z)_k``; ``targets`` ``(B, K)`` or class ids ``(B,)``."""
    if targets.ndim == 1:
        return F.cross_entropy(logits.float(), targets.long())
    return per_sample_cross_entropy(logits, targets).mean()


def per_sample_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)``: ``-Σ_k y_k log softmax(z)_k`` of each sample against soft targets ``(B, K)``."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1)


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Class ids ``(B,)`` → one-hot ``(B, K)`` with ``smoothing/K`` on every class (rows sum to 1)."""
    off = smoothing / num_classes
    y = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    return y.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


@register_task
class Classification(Task):
    """One class per video; on multi-label annotations the recipe's ``classification`` becomes
    :class:`~vidgrid.tasks.multi_label.MultiLabelClassification`."""

    name = "classification"
    best_metric = "top1"
    multi_label_variant = "multi_label"

    def target(self, sample: Sample) -> torch.Tensor:
        """int64 scalar class id."""
        if sample.label < 0:
            raise DataError(f"{sample.path}: has several labels; single-label classification needs one")
        return torch.tensor(sample.label, dtype=torch.int64)

    def soft_targets(self, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        return smooth_one_hot(targets, self.num_outputs, smoothing)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return soft_target_cross_entropy(outputs, targets)

    def aggregate_views(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(B, V, K)`` logits → mean over views of the softmax ``(B, K)``."""
        return torch.softmax(outputs.float(), dim=-1).mean(dim=1)

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        scores, targets = scores.float().cpu(), targets.cpu()
        acc = topk_accuracy(scores, targets)
        confusion = confusion_matrix(scores.argmax(dim=1), targets, scores.shape[1])
        return {"top1": acc[1], "top5": acc[5], "mean_class_acc": mean_class_accuracy(confusion)}

    def empty_metrics(self) -> dict[str, float]:
        return {"top1": 0.0, "top5": 0.0, "mean_class_acc": 0.0}

    def label(self, target: torch.Tensor) -> str | list[str]:
        """The class name of a target (``predictions.jsonl``'s ``label``)."""
        return self.classes[int(target)]

    def record(self, scores: torch.Tensor, target: torch.Tensor, *, top: int = 5) -> dict[str, Any]:
        """``label`` (a list for multi-label), ``prediction``, ``correct`` (top-1 is a true class) and
        ``top5`` as ``[[class, score], ...]`` best first."""
        ranked = [[c["class"], c["score"]] for c in self.ranked(scores, top)]
        label = self.label(target)
        truth = label if isinstance(label, list) else [label]
        return {"label": label, "prediction": ranked[0][0], "correct": ranked[0][0] in truth, f"top{top}": ranked}

    def ranked(self, scores: torch.Tensor, top: int) -> list[dict[str, Any]]:
        """The ``top`` best classes of one video's scores: ``[{"class", "index", "score"}, ...]``."""
        best = scores.topk(min(top, scores.shape[0]))
        return [
            {"class": self.classes[c], "index": c, "score": round(float(s), 5)}
            for s, c in zip(best.values.tolist(), best.indices.tolist())
        ]

    def prediction(self, scores: torch.Tensor, *, top: int) -> dict[str, Any]:
        return {"top": self.ranked(scores, top)}

    def format_prediction(self, prediction: dict[str, Any]) -> list[str]:
        """``  1. class  97.5%`` per ranked class."""
        width = max(len(t["class"]) for t in prediction["top"])
        return [f"  {k}. {t['class']:<{width}}  {100 * t['score']:5.1f}%" for k, t in enumerate(prediction["top"], 1)]

    def write_plots(self, out_dir: Path, scores: torch.Tensor, targets: torch.Tensor) -> list[Path]:
        confusion = confusion_matrix(scores.argmax(dim=1), targets, len(self.classes))
        return [plot_confusion(out_dir / CONFUSION_FILE, confusion, self.classes)]

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``top-1 93.8% · top-5 100.0% · mean class accuracy 93.5%``."""
        return (f"top-1 {100 * metrics['top1']:.1f}% · top-5 {100 * metrics['top5']:.1f}% · "
                f"mean class accuracy {100 * metrics['mean_class_acc']:.1f}%")


def plot_confusion(path: Path, confusion: torch.Tensor, classes: Sequence[str]) -> Path:
    """Row-normalised confusion matrix (row = true class) as a PNG; names and counts shown for up to
    30 classes, a plain heat map beyond."""
    from matplotlib.figure import Figure

    k = len(classes)
    counts = confusion.double()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    side = min(4 + 0.35 * k, 16) if k <= 30 else 10
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    if k <= 30:
        ax.set_xticks(range(k), labels=list(classes), rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels=list(classes), fontsize=8)
        for i in range(k):
            for j in range(k):
                if counts[i, j] > 0:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(counts.sum())
    accuracy = float(counts.diag().sum() / max(total, 1))
    ax.set_title(f"confusion matrix: {total} videos, top-1 {100 * accuracy:.1f}%")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
