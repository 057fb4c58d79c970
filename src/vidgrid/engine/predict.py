"""``vidgrid predict``: the top classes of some videos under a trained checkpoint.

Each video is scored like the validation set was: the checkpoint's own recipe decides the test views
(``eval.clips`` temporal clips × ``eval.crops`` crops of ``data.frames`` × ``eval.crop``²) and its task
aggregates them and describes the result (:mod:`vidgrid.engine.evaluate`, :mod:`vidgrid.tasks`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from vidgrid.config import Config
from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.decode import DecodeError, probe_video
from vidgrid.engine.distributed import pick_device
from vidgrid.engine.evaluate import eval_dataset_from_config, score_views
from vidgrid.engine.weights import load_weights, model_from_weights
from vidgrid.errors import VidgridError
from vidgrid.tasks import Task


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be used as a video, or None if it opens."""
    if not path.is_file():
        return "file not found"
    try:
        probe_video(path)
    except DecodeError as e:
        return e.reason
    return None


@torch.inference_mode()
def predict_videos(
    model: nn.Module,
    videos: Sequence[Path],
    task: Task,
    *,
    cfg: Config,
    device: torch.device,
    top: int,
    figures: Path | None = None,
) -> list[dict]:
    """One result per video, in order: ``{"video", **task.prediction}`` (classification: ``"top":
    [{"class", "index", "score"}, ...]`` best first), or ``{"video", "error"}`` for a video that is
    missing or cannot be decoded. With ``figures``, the task's picture of each prediction goes there
    as ``<video stem>.png`` (the sibling task: the centre frame with the box), named in ``"figure"``."""
    model.eval().to(device)
    results: dict[Path, dict] = {}
    readable = []
    for path in videos:
        reason = _unreadable(path)
        if reason is None:
            readable.append(path)
        else:
            results[path] = {"video": str(path), "error": reason}
    if readable:
        # the label is never read: no target exists, but the dataset yields one per video
        dataset = eval_dataset_from_config(cfg, Annotations([Sample(p, 0) for p in readable], task.classes), task)
        for i, path in enumerate(readable):
            views, target, index = dataset[i]
            if index < 0:
                results[path] = {"video": str(path), "error": dict(dataset.skipped()).get(str(path), "cannot decode")}
                continue
            scores = score_views(model, views.unsqueeze(0).to(device), task, mean=cfg.data.mean, std=cfg.data.std)[0]
            results[path] = {"video": str(path), **task.prediction(scores, top=top)}  # (1, V, C, T, H, W) -> (K,)
            figure = task.prediction_figure(figures / f"{path.stem}.png", path, scores, target) if figures else None
            if figure is not None:
                results[path]["figure"] = str(figure)
    return [results[p] for p in videos]


def format_predictions(results: list[dict], task: Task) -> str:
    """A table per video (classification: rank, class name and score in percent)."""
    return "\n".join("\n".join([r["video"], *task.format_prediction(r)]) for r in results if "error" not in r)


def predict_command(videos: list[Path], checkpoint: Path, *, top: int, as_json: bool, figures: Path | None = None) -> int:
    """Print the ``top`` classes of each video (a table, or one JSON object with ``--json``).

    A missing or undecodable video is an ``error: PATH: reason`` line on stderr; the others are still
    predicted and the exit code is 2."""
    if top < 1:
        raise VidgridError(f"--top {top}: expected an integer >= 1")
    weights = load_weights(checkpoint)
    model, task, cfg = model_from_weights(weights)
    results = predict_videos(model, videos, task, cfg=cfg, device=pick_device("auto", 0), top=top, figures=figures)
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"error: {r['video']}: {r['error']}", file=sys.stderr)
    if as_json:
        print(json.dumps({"checkpoint": str(checkpoint), "model": weights.model_name, "predictions": results}, indent=2))
    elif len(failed) < len(results):
        print(format_predictions(results, task))
        for r in results:
            if "figure" in r:
                print(f"written: {r['figure']}")
    return 2 if failed else 0
