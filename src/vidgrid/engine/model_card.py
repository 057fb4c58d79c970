"""``model_card.md``: what a reader needs to know about a trained model and to train it again.

Written at the end of training (into the run folder) and beside every export: the architecture and its
cost (parameters; GFLOPs counted as multiply-adds per view, the convention of the X3D, SlowFast and
MViT tables, and per video over the test views), the test preprocessing, the data (videos, classes),
the metrics, the training time and the whole recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from vidgrid.config import Config, config_to_dict
from vidgrid.models import create_model
from vidgrid.models.profile import count_gmacs, count_params

if TYPE_CHECKING:
    from vidgrid.engine.run import Run

CARD = "model_card.md"


@dataclass(frozen=True)
class CardFacts:
    """Everything a card states; the parts not known (a converted file has no training) stay empty."""

    spec: dict[str, Any]
    """``{"name", "num_classes", "options"}``: the :func:`create_model` arguments."""
    cfg: Config
    task: str
    classes: list[str]
    source: str
    """Where the weights come from (a checkpoint, a run folder)."""
    data: dict[str, int] = field(default_factory=dict)
    """Videos per split (``train``, ``val``) when known."""
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    training: dict[str, float] = field(default_factory=dict)
    """``wall_time_s``, ``iterations``, ``epochs``, ``clips_seen``."""


def config_spec(cfg: Config, *, num_outputs: int) -> dict[str, Any]:
    """The :func:`create_model` arguments of a recipe's model (``model.num_classes``, else the task's
    outputs; dropout and drop path among the options)."""
    m = cfg.model
    rates = {k: v for k, v in (("dropout", m.dropout), ("drop_path", m.drop_path)) if v is not None}
    return {"name": m.name, "num_classes": m.num_classes or num_outputs, "options": {**m.options, **rates}}


def run_facts(run: Run) -> CardFacts:
    """The card of a finished training run: its recipe, datasets, last and best validation and counters."""
    state = run.state
    training = {"wall_time_s": state.wall_time_s, "iterations": state.iteration, "epochs": state.epoch,
                "clips_seen": state.clips_seen}
    best = {"metric": run.task.best_metric, **state.best} if state.best else {}
    return CardFacts(config_spec(run.cfg, num_outputs=run.task.num_outputs), run.cfg, run.task.name, run.task.classes,
                     str(run.last_checkpoint), data={"train": len(run.train_set), "val": sum(map(len, run.val_sets.values()))},
                     metrics=dict(state.val), best=best, training=training)


def test_views(cfg: Config) -> tuple[int, int, int]:
    """(clips, crops, crop) of multi-view testing: ``eval.clips`` × ``eval.crops`` views of ``eval.crop``²
    (0 = ``data.crop``)."""
    return cfg.eval.clips, cfg.eval.crops, cfg.eval.crop or cfg.data.crop


def model_cost(spec: dict[str, Any], view: tuple[int, int, int, int]) -> tuple[int, float]:
    """(parameters, GFLOPs of one ``view`` (C, T, H, W) clip) of the model, counted on the meta device."""
    with torch.device("meta"):
        model = create_model(spec["name"], num_classes=spec["num_classes"], **spec["options"])
    return count_params(model)[0], count_gmacs(model, view)


def model_card(facts: CardFacts) -> str:
    """The card as Markdown."""
    cfg = facts.cfg
    clips, crops, crop = test_views(cfg)
    view = (3, cfg.data.frames, crop, crop)
    params, gflops = model_cost(facts.spec, view)
    options = ", ".join(f"{k}={v}" for k, v in facts.spec["options"].items()) or "none"
    lines = [
        f"# {facts.spec['name']} ({facts.task}, {len(facts.classes)} classes)",
        "",
        f"Weights: `{facts.source}`.",
        "",
        "## Architecture",
        f"- model: `{facts.spec['name']}`, options: {options}, outputs: {facts.spec['num_classes']}",
        f"- parameters: {params:,} ({params / 1e6:.2f} M)",
        f"- GFLOPs per view (multiply-adds, {view[1]}x{crop}x{crop} clip): {gflops:.4g}",
        f"- views per video: {clips} clips x {crops} crops = {clips * crops}; GFLOPs per video: {gflops * clips * crops:.4g}",
        "",
        "## Test preprocessing",
        f"- {cfg.data.frames} frames every {cfg.data.sampling_rate} source frames; short side resized to "
        f"{cfg.eval.short_side or crop}, {crops} crop(s) of {crop}x{crop}",
        f"- pixels / 255, then mean {list(cfg.data.mean)}, std {list(cfg.data.std)} per RGB channel",
        "",
        "## Data",
        *([f"- {split}: {n} videos ({path})" for split, n, path in _splits(facts)] or ["- videos: not known"]),
        f"- classes ({len(facts.classes)}): {', '.join(facts.classes[:50])}{' ...' if len(facts.classes) > 50 else ''}",
        "",
        "## Metrics",
        *([f"- {k}: {v:.4g}" for k, v in facts.metrics.items()] or ["- not evaluated"]),
        *([f"- best {facts.best.get('metric', '')}: {facts.best['value']:.4g} (epoch {facts.best['epoch']})"]
          if "value" in facts.best else []),
        "",
        "## Training",
        *([f"- wall time: {facts.training['wall_time_s']:.1f} s; iterations: {facts.training['iterations']}; "
           f"epochs: {facts.training['epochs']}; clips: {facts.training['clips_seen']}"]
          if facts.training else ["- not trained by vidgrid (converted weights)"]),
        "",
        "## Recipe",
        "Train again with `vidgrid train recipe.yaml` after saving this block as `recipe.yaml`:",
        "",
        "```yaml",
        yaml.safe_dump(config_to_dict(cfg), sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _splits(facts: CardFacts) -> list[tuple[str, int, str]]:
    lists = {"train": facts.cfg.data.train_list, "val": facts.cfg.data.val_list}
    return [(split, n, lists.get(split, "")) for split, n in facts.data.items()]


def write_model_card(folder: Path, facts: CardFacts) -> Path:
    """Write ``folder/model_card.md``."""
    path = Path(folder) / CARD
    path.write_text(model_card(facts))
    return path
