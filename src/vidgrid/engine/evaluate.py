"""Multi-view evaluation: K temporal clips × 1 or 3 spatial crops per video, scores averaged.

Each video gives V = K × crops views ``uint8 (V, C, T, s, s)`` (:class:`~vidgrid.data.dataset.VideoTestDataset`,
one decode per video). The model scores every view; the video's scores are the mean of the per-view
softmax (multigrid paper §4 and MultiTrain supplement: "we average the softmax scores across all clips"), or for
multi-label data the max over views of the per-class sigmoid (X3D supplement §A.2: temporally
max-pooled prediction scores, Charades). Results: top-1 / top-5 / mean class accuracy (mAP for
multi-label), a per-video ``predictions.jsonl`` and a ``confusion.png``.

The pieces are separate so that distributed training can score its shard per process
(:func:`collect_scores`), gather, and report once on rank 0 (:func:`report`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from vidgrid.config import Config
from vidgrid.engine.device import normalize_clip
from vidgrid.engine.metrics import classification_metrics, confusion_matrix

PREDICTIONS_FILE = "predictions.jsonl"
CONFUSION_FILE = "confusion.png"
EVAL_METRICS_FILE = "eval.json"


@dataclass
class ViewScores:
    """Video-level scores of an evaluation pass (rows in the order the loader gave them)."""

    scores: torch.Tensor
    """float (N, K): mean softmax over views, or max sigmoid over views (multi-label)."""
    targets: torch.Tensor
    """int64 (N,) class ids, or float (N, K) multi-hot."""
    indices: torch.Tensor
    """int64 (N,) dataset index of each row (videos that failed to decode are left out)."""


def aggregate_views(logits: torch.Tensor, *, multi_label: bool) -> torch.Tensor:
    """``(B, V, K)`` per-view logits → ``(B, K)`` video scores: mean of softmax, or max of sigmoid."""
    if multi_label:
        return torch.sigmoid(logits.float()).amax(dim=1)
    return torch.softmax(logits.float(), dim=-1).mean(dim=1)


def score_views(
    model: nn.Module,
    views: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    multi_label: bool,
    clips_per_forward: int = 32,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Video scores ``(B, K)`` of ``uint8 (B, V, C, T, H, W)`` views already on the model's device.

    Views are normalised on the device and run through the model at most ``clips_per_forward`` at a
    time (B·V clips can be far more than fit in memory at once)."""
    b, v = views.shape[:2]
    flat = views.flatten(0, 1)  # (B, V, C, T, H, W) -> (B·V, C, T, H, W)
    logits = []
    for chunk in flat.split(clips_per_forward):
        x = normalize_clip(chunk, mean, std)
        with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits.append(model(x).float())
    return aggregate_views(torch.cat(logits).view(b, v, -1), multi_label=multi_label)  # (B·V, K) -> (B, V, K)


@torch.inference_mode()
def collect_scores(
    model: nn.Module,
    loader: DataLoader,
    *,
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
    multi_label: bool,
    clips_per_forward: int = 32,
    autocast_dtype: torch.dtype | None = None,
) -> ViewScores:
    """Score every video of a loader of ``(views, target, index)`` batches (index -1 = undecodable,
    left out). The model runs in eval mode and gets its previous mode back afterwards."""
    was_training = model.training
    model.eval()
    scores, targets, indices = [], [], []
    try:
        for views, target, index in loader:
            keep = index >= 0
            if not keep.any():
                continue
            views = views[keep].to(device, non_blocking=True)
            scores.append(
                score_views(
                    model, views, mean=mean, std=std, multi_label=multi_label,
                    clips_per_forward=clips_per_forward, autocast_dtype=autocast_dtype,
                ).cpu()
            )
            targets.append(target[keep])
            indices.append(index[keep])
    finally:
        model.train(was_training)
    if not scores:
        return ViewScores(torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    return ViewScores(torch.cat(scores), torch.cat(targets), torch.cat(indices).long())


def _label_names(target: torch.Tensor, classes: Sequence[str], multi_label: bool) -> str | list[str]:
    if multi_label:
        return [classes[k] for k in torch.nonzero(target > 0.5).flatten().tolist()]
    return classes[int(target)]


def write_predictions(
    path: Path,
    result: ViewScores,
    *,
    paths: Sequence[str | Path],
    classes: Sequence[str],
    multi_label: bool,
    top: int = 5,
) -> Path:
    """One JSON object per video: ``path``, true ``label`` (a list for multi-label), ``prediction``,
    ``correct`` (top-1 is a true class) and ``top5`` as ``[[class, score], ...]`` best first."""
    k = min(top, result.scores.shape[1]) if result.scores.numel() else 0
    lines = []
    for row, target, index in zip(result.scores, result.targets, result.indices.tolist()):
        best = row.topk(k)
        ranked = [[classes[c], round(float(s), 5)] for s, c in zip(best.values.tolist(), best.indices.tolist())]
        label = _label_names(target, classes, multi_label)
        truth = set(label) if multi_label else {label}
        lines.append(
            json.dumps(
                {
                    "path": str(paths[index]),
                    "label": label,
                    "prediction": ranked[0][0],
                    "correct": ranked[0][0] in truth,
                    f"top{top}": ranked,
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


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


def report(
    result: ViewScores,
    *,
    classes: Sequence[str],
    paths: Sequence[str | Path],
    multi_label: bool,
    out_dir: Path | None = None,
) -> dict[str, float | int]:
    """Metrics of ``result`` (``top1``, ``top5``, ``mean_class_acc`` or ``mAP``, ``videos``); with
    ``out_dir`` also ``predictions.jsonl`` and, for single-label data, ``confusion.png``."""
    if result.scores.numel() == 0:
        metrics: dict[str, float | int] = {"top1": 0.0, "top5": 0.0, "videos": 0}
        metrics.update({"mAP": 0.0} if multi_label else {"mean_class_acc": 0.0})
        return metrics
    metrics = {**classification_metrics(result.scores, result.targets, multi_label=multi_label), "videos": len(result.indices)}
    if out_dir is not None:
        write_predictions(out_dir / PREDICTIONS_FILE, result, paths=paths, classes=classes, multi_label=multi_label)
        if not multi_label:
            confusion = confusion_matrix(result.scores.argmax(dim=1), result.targets, len(classes))
            plot_confusion(out_dir / CONFUSION_FILE, confusion, classes)
    return metrics


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
    classes: Sequence[str],
    paths: Sequence[str | Path],
    multi_label: bool,
    out_dir: Path | None = None,
    clips_per_forward: int = 32,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float | int]:
    """:func:`collect_scores` then :func:`report`, in one process."""
    result = collect_scores(
        model, loader, device=device, mean=mean, std=std, multi_label=multi_label,
        clips_per_forward=clips_per_forward, autocast_dtype=autocast_dtype,
    )
    return report(result, classes=classes, paths=paths, multi_label=multi_label, out_dir=out_dir)


# --------------------------------------------------------------------------------------------------
# the edge: recipe + checkpoint -> numbers and files


def test_crop(cfg: Config) -> int:
    """The crop of the test views: ``eval.crop``, or the training crop when 0."""
    return cfg.eval.crop or cfg.data.crop


def eval_dataset_from_config(cfg: Config, annotations) -> torch.utils.data.Dataset:
    """The :class:`VideoTestDataset` of a recipe: base frames and stride, ``eval.clips`` × ``eval.crops``
    views of ``eval.crop``² (0 = ``data.crop``) cut after resizing the short side to ``eval.short_side``
    (0 = the test crop)."""
    from vidgrid.data.dataset import VideoTestDataset

    return VideoTestDataset(
        annotations,
        frames=cfg.data.frames,
        sampling_rate=cfg.data.sampling_rate,
        clips=cfg.eval.clips,
        crops=cfg.eval.crops,
        short_side=cfg.eval.short_side or test_crop(cfg),
        crop=test_crop(cfg),
        temporal_sampling=cfg.data.temporal_sampling,
    )


def eval_loader(dataset: torch.utils.data.Dataset, *, batch_size: int, workers: int) -> DataLoader:
    """In-order loader over a test dataset (videos are never dropped or shuffled)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, drop_last=False)


def evaluate_checkpoint(cfg: Config, checkpoint: Path, out_dir: Path) -> dict:
    """``vidgrid eval``: the checkpoint's model on ``data.val_list`` with the recipe's test views.

    Writes ``predictions.jsonl``, ``confusion.png`` and ``eval.json`` into ``out_dir``, prints the
    result, and returns the metrics plus ``skipped_videos`` (undecodable videos, left out). A list where
    no video can be evaluated is a DataError."""
    from vidgrid.engine.build import load_split
    from vidgrid.engine.distributed import pick_device
    from vidgrid.engine.weights import load_weights, model_from_weights
    from vidgrid.errors import CheckpointError, DataError

    weights = load_weights(checkpoint)
    model, classes, trained = model_from_weights(weights, recipe=cfg)
    annotations = load_split(cfg, "val")
    if list(annotations.classes) != list(classes)[: annotations.num_classes]:
        raise CheckpointError(
            f"{checkpoint}: its {len(classes)} classes ({', '.join(classes[:3])}, ...) do not match the "
            f"{annotations.num_classes} classes of {cfg.data.val_list} ({', '.join(annotations.classes[:3])}, ...)"
        )
    if weights.model_name != cfg.model.name:
        print(f"note: the checkpoint holds {weights.model_name}; the recipe names {cfg.model.name}")
    device = pick_device(cfg.train.device, 0)
    model = model.to(device)
    dataset = eval_dataset_from_config(cfg, annotations)
    loader = eval_loader(dataset, batch_size=cfg.eval.batch_size, workers=cfg.data.workers)
    print(
        f"evaluating {weights.model_name} on {len(dataset)} videos × {dataset.num_views} views "
        f"({cfg.eval.clips} clips × {cfg.eval.crops} crops of {cfg.data.frames}x{test_crop(cfg)}²) on {device}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluate(
        model, loader, device=device, mean=trained.data.mean, std=trained.data.std, classes=classes,
        paths=[s.path for s in annotations.samples], multi_label=annotations.multi_label, out_dir=out_dir,
    )
    skipped = dataset.skipped()
    if not metrics["videos"]:
        examples = "; ".join(f"{path}: {reason}" for path, reason in skipped[:2])
        raise DataError(f"{cfg.data.val_list}: none of its {len(dataset)} videos could be evaluated ({examples}, ...)")
    result = {**metrics, "checkpoint": str(checkpoint), "views": dataset.num_views, "skipped_videos": [list(s) for s in skipped]}
    (out_dir / EVAL_METRICS_FILE).write_text(json.dumps(result, indent=2) + "\n")
    print(format_eval(metrics, multi_label=annotations.multi_label))
    if skipped:
        print(f"{len(skipped)} videos could not be decoded and were left out (listed in {out_dir / EVAL_METRICS_FILE})")
    print(f"predictions: {out_dir / PREDICTIONS_FILE}")
    if not annotations.multi_label:
        print(f"confusion matrix: {out_dir / CONFUSION_FILE}")
    return result


def format_eval(metrics: dict, *, multi_label: bool) -> str:
    """``top-1 93.8% · top-5 100.0% · mean class accuracy 93.5% · 48 videos``."""
    parts = [f"top-1 {100 * metrics['top1']:.1f}%", f"top-5 {100 * metrics['top5']:.1f}%"]
    if multi_label:
        parts.insert(0, f"mAP {100 * metrics['mAP']:.1f}%")
    else:
        parts.append(f"mean class accuracy {100 * metrics['mean_class_acc']:.1f}%")
    return " · ".join(parts + [f"{metrics['videos']} videos"])
