"""Multi-view evaluation: K temporal clips × 1 or 3 spatial crops per video, scores aggregated by the task.

Each video gives V = K × crops views ``uint8 (V, C, T, s, s)`` (:class:`~vidgrid.data.dataset.VideoTestDataset`,
one decode per video). The model scores every view and the task aggregates them into the video's
scores (:meth:`vidgrid.tasks.Task.aggregate_views`: the mean softmax for classification, the max
sigmoid for multi-label data). The task also computes the metrics, the per-video record of
``predictions.jsonl`` and its plots (``confusion.png`` for classification).

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
from vidgrid.data.annotations import Annotations
from vidgrid.data.dataset import VideoTestDataset
from vidgrid.data.multi_dataset import split_annotations
from vidgrid.engine.build import dataset_recipe, load_split
from vidgrid.engine.device import normalize_clip
from vidgrid.engine.distributed import pick_device
from vidgrid.engine.loading import make_loader
from vidgrid.engine.weights import load_weights, model_from_weights
from vidgrid.errors import CheckpointError, DataError
from vidgrid.tasks import Task

PREDICTIONS_FILE = "predictions.jsonl"
EVAL_METRICS_FILE = "eval.json"


@dataclass
class ViewScores:
    """Video-level scores of an evaluation pass (rows in the order the loader gave them)."""

    scores: torch.Tensor
    """float (N, ...): the task's aggregate of each video's views."""
    targets: torch.Tensor
    """(N, ...) targets as the task's :meth:`~vidgrid.tasks.Task.target` gives them."""
    indices: torch.Tensor
    """int64 (N,) dataset index of each row (videos that failed to decode are left out)."""


def score_views(
    model: nn.Module,
    views: torch.Tensor,
    task: Task,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    clips_per_forward: int = 32,
    autocast_dtype: torch.dtype | None = None,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Video scores of ``uint8 (B, V, C, T, H, W)`` views already on the model's device.

    Views are normalised on the device and run through the model (:meth:`~vidgrid.tasks.Task.forward`,
    with the views' targets where they are per view, ``(B, V, ...)``) at most ``clips_per_forward`` at a
    time (B·V clips can be far more than fit in memory at once)."""
    b, v = views.shape[:2]
    flat = views.flatten(0, 1)  # (B, V, C, T, H, W) -> (B·V, C, T, H, W)
    per_view = targets is not None and tuple(targets.shape[:2]) == (b, v)  # else per video: the default forward ignores them
    flat_targets = targets.to(views.device).flatten(0, 1) if per_view else torch.zeros(b * v, 0, device=views.device)
    outputs = []
    for chunk, chunk_targets in zip(flat.split(clips_per_forward), flat_targets.split(clips_per_forward)):
        x = normalize_clip(chunk, mean, std)
        with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs.append(task.forward(model, x, chunk_targets).float())
    per_view = torch.cat(outputs)
    return task.aggregate_views(per_view.view(b, v, *per_view.shape[1:]))  # (B·V, ...) -> (B, V, ...) -> (B, ...)


@torch.inference_mode()
def collect_scores(
    model: nn.Module,
    loader: DataLoader,
    task: Task,
    *,
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
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
                    model, views, task, mean=mean, std=std, clips_per_forward=clips_per_forward,
                    autocast_dtype=autocast_dtype, targets=target[keep],
                ).cpu()
            )
            targets.append(target[keep])
            indices.append(index[keep])
    finally:
        model.train(was_training)
    if not scores:
        return ViewScores(torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    return ViewScores(torch.cat(scores), torch.cat(targets), torch.cat(indices).long())


def write_predictions(path: Path, result: ViewScores, task: Task, *, paths: Sequence[str | Path], top: int = 5) -> Path:
    """One JSON object per video: its ``path`` and the task's record (classification: ``label``,
    ``prediction``, ``correct``, ``top5``)."""
    lines = [
        json.dumps({"path": str(paths[index]), **task.record(row, target, top=top)})
        for row, target, index in zip(result.scores, result.targets, result.indices.tolist())
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def report(
    result: ViewScores, task: Task, *, paths: Sequence[str | Path], out_dir: Path | None = None
) -> tuple[dict[str, float | int], list[Path]]:
    """The task's metrics of ``result`` plus ``videos``, and with ``out_dir`` the files written:
    ``predictions.jsonl`` and the task's plots."""
    if result.scores.numel() == 0:
        return {**task.empty_metrics(), "videos": 0}, []
    metrics = {**task.metrics(result.scores, result.targets), "videos": len(result.indices)}
    if out_dir is None:
        return metrics, []
    files = [write_predictions(out_dir / PREDICTIONS_FILE, result, task, paths=paths)]
    files += task.write_plots(out_dir, result.scores, result.targets)
    return metrics, files


# --------------------------------------------------------------------------------------------------
# the edge: recipe + checkpoint -> numbers and files


def test_crop(cfg: Config) -> int:
    """The crop of the test views: ``eval.crop``, or the training crop when 0."""
    return cfg.eval.crop or cfg.data.crop


def eval_dataset_from_config(cfg: Config, annotations: Annotations, task: Task) -> VideoTestDataset:
    """The :class:`VideoTestDataset` of a recipe: base frames and stride, ``eval.clips`` × ``eval.crops``
    views of ``eval.crop``² (0 = ``data.crop``) cut after resizing the short side to ``eval.short_side``
    (0 = the test crop); targets from ``task``."""
    return VideoTestDataset(
        annotations,
        target=task.clip_target,
        frames=cfg.data.frames,
        sampling_rate=cfg.data.sampling_rate,
        clips=cfg.eval.clips,
        crops=cfg.eval.crops,
        short_side=cfg.eval.short_side or test_crop(cfg),
        crop=test_crop(cfg),
        temporal_sampling=cfg.data.temporal_sampling,
    )


def eval_datasets(cfg: Config, annotations: Annotations, task: Task) -> dict[str, VideoTestDataset]:
    """The validation set of each of ``task``'s :meth:`~vidgrid.tasks.Task.evaluation_tasks`: the
    recipe's one, or each dataset's of ``datasets`` with its own clip sampling and test views."""
    if not cfg.datasets:
        return {"": eval_dataset_from_config(cfg, annotations, task)}
    parts = split_annotations(annotations)
    return {name: eval_dataset_from_config(dataset_recipe(cfg, name), parts[name], task) for name in task.evaluation_tasks()}


def evaluate_checkpoint(cfg: Config, checkpoint: Path, out_dir: Path) -> dict:
    """``vidgrid eval``: the checkpoint's model on ``data.val_list`` with the recipe's test views.

    Writes ``predictions.jsonl``, the task's plots (``confusion.png``) and ``eval.json`` into
    ``out_dir``, prints the result, and returns the metrics plus ``skipped_videos`` (undecodable
    videos, left out). A list where no video can be evaluated is a DataError."""
    weights = load_weights(checkpoint)
    model, task, trained = model_from_weights(weights, recipe=cfg)
    annotations = load_split(cfg, "val")
    if list(annotations.classes) != task.classes[: annotations.num_classes]:
        raise CheckpointError(
            f"{checkpoint}: its {len(task.classes)} classes ({', '.join(task.classes[:3])}, ...) do not match the "
            f"{annotations.num_classes} classes of {cfg.data.val_list} ({', '.join(annotations.classes[:3])}, ...)"
        )
    if weights.model_name != cfg.model.name:
        print(f"note: the checkpoint holds {weights.model_name}; the recipe names {cfg.model.name}")
    device = pick_device(cfg.train.device, 0)
    model = model.to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_part, files, skipped, views = {}, [], [], {}
    parts = task.evaluation_tasks()
    for name, dataset in eval_datasets(cfg, annotations, task).items():
        part, folder = parts[name], out_dir / name if name else out_dir
        loader = make_loader(dataset, batch_size=cfg.eval.batch_size, workers=cfg.data.workers, seed=cfg.train.seed)
        print(
            f"evaluating {weights.model_name} on {len(dataset)} {name + ' ' if name else ''}videos × {dataset.num_views} "
            + (f"views ({dataset.clips} clips × {dataset.crops} crops of {cfg.data.frames}x{test_crop(cfg)}²) on {device}"
               if dataset.crops else f"views ({dataset.clips} clips of {cfg.data.frames} whole frames at short side "
               f"{cfg.eval.short_side or test_crop(cfg)}) on {device}")
        )
        result = collect_scores(model, loader, part, device=device, mean=trained.data.mean, std=trained.data.std)
        per_part[name], written = report(result, part, paths=[s.path for s in dataset.annotations.samples], out_dir=folder)
        files += written
        left_out = dataset.skipped()
        skipped += left_out
        views[name] = dataset.num_views
        if not per_part[name]["videos"]:
            examples = "; ".join(f"{path}: {reason}" for path, reason in left_out[:2])
            raise DataError(f"{name or cfg.data.val_list}: none of its {len(dataset)} videos could be evaluated ({examples}, ...)")
    metrics = task.combine_metrics(per_part)
    summary = {**task.summary_metrics(metrics), "checkpoint": str(checkpoint),
               "views": views[""] if "" in views else views, "skipped_videos": [list(s) for s in skipped]}
    (out_dir / EVAL_METRICS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    videos = sum(m["videos"] for m in per_part.values())
    print(f"{task.format_metrics(metrics)} · {videos} videos")
    if skipped:
        print(f"{len(skipped)} videos could not be decoded and were left out (listed in {out_dir / EVAL_METRICS_FILE})")
    print("\n".join(f"written: {path}" for path in files))
    return summary
