"""The Python API, for notebooks: the commands as functions that return what they print.

    import vidgrid
    summary = vidgrid.train("demo", out="runs/demo", data={"train_list": "d/train.csv", "val_list": "d/val.csv"})
    metrics = vidgrid.evaluate("demo", "runs/demo/checkpoints/best.pt", data={"val_list": "d/val.csv"})
    results = vidgrid.predict(["clip.mp4"], "runs/demo/checkpoints/best.pt", top=3)
    model = vidgrid.load_model("runs/demo/checkpoints/best.pt")   # or an export folder

Overrides are keyword arguments: a section and a dict of its fields (``optim={"lr": 0.2}``), or dotted
keys (``**{"optim.lr": 0.2}``), applied as ``vidgrid train``'s ``KEY=VALUE`` arguments are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from vidgrid.config import Config, load_config
from vidgrid.engine.distributed import pick_device
from vidgrid.engine.evaluate import evaluate_checkpoint
from vidgrid.engine.predict import collect_videos, predict_videos, windowing
from vidgrid.engine.trainer import train as train_run
from vidgrid.engine.weights import load_weights, model_from_weights
from vidgrid.models import load_exported


def override_args(overrides: dict[str, Any]) -> list[str]:
    """``KEY=VALUE`` strings of keyword overrides: ``optim={"lr": 0.2}`` and ``**{"optim.lr": 0.2}`` both
    give ``optim.lr=0.2`` (values written as JSON, which the YAML override parser reads)."""
    args = []
    for key, value in overrides.items():
        if "." not in key and isinstance(value, dict):
            args += [f"{key}.{field}={json.dumps(v, default=str)}" for field, v in value.items()]
        else:
            args.append(f"{key}={json.dumps(value, default=str)}")
    return args


def recipe_config(recipe: str | Path | None = None, **overrides: Any) -> Config:
    """The typed config of a recipe (a path or a packaged name such as ``demo``) with overrides."""
    return load_config(recipe, override_args(overrides))


def train(recipe: str | Path | Config, out: str | Path | None = None, *, resume: str | None = None,
          overwrite: bool = False, **overrides: Any) -> dict[str, Any]:
    """``vidgrid train``: train into ``out`` (default ``runs/<recipe>-<time>``); returns the summary."""
    cfg = recipe if isinstance(recipe, Config) else recipe_config(recipe, **overrides)
    name = Path(str(recipe)).stem if not isinstance(recipe, Config) else "run"
    folder = Path(out) if out is not None else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return train_run(cfg, folder, resume=resume, overwrite=overwrite)


def evaluate(recipe: str | Path | Config, checkpoint: str | Path, out: str | Path | None = None,
             **overrides: Any) -> dict[str, Any]:
    """``vidgrid eval``: multi-view metrics of ``checkpoint`` on the recipe's val list (files in ``out``,
    default ``eval/`` beside the checkpoint)."""
    cfg = recipe if isinstance(recipe, Config) else recipe_config(recipe, **overrides)
    folder = Path(out) if out is not None else Path(checkpoint).parent / "eval"
    return evaluate_checkpoint(cfg, Path(checkpoint), folder)


def predict(videos: str | Path | Sequence[str | Path], checkpoint: str | Path, *, top: int = 5,
            window: float | None = None, stride: float | None = None) -> list[dict[str, Any]]:
    """``vidgrid predict``: per video ``{"video", "top": [{"class", "index", "score"}, ...]}``, or with
    ``window`` (seconds) its timeline ``{"video", ..., "windows": [{"start", "end", "top"}, ...]}``;
    folders are searched recursively."""
    paths = [Path(videos)] if isinstance(videos, (str, Path)) else [Path(v) for v in videos]
    model, task, cfg = model_from_weights(load_weights(checkpoint))
    return predict_videos(model, collect_videos(paths), task, cfg=cfg, device=pick_device("auto", 0), top=top,
                          windows=windowing(window, stride))


def load_model(path: str | Path) -> nn.Module:
    """The model of a checkpoint, a converted file or an export folder (``vidgrid export --format
    safetensors``), in eval mode on the CPU."""
    if Path(path).is_dir():
        return load_exported(path)
    return model_from_weights(load_weights(path))[0]
