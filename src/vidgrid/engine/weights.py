"""Model weights from a file: a vidgrid training checkpoint or a file written by ``vidgrid convert``.

A training checkpoint (:mod:`vidgrid.engine.checkpoint`) carries its run config, task and class names. A
converted file carries ``model``, ``model_name``, ``num_classes`` and ``converted_from``, plus
``classes`` when it was converted with ``--classes``. Both initialise training (``model.pretrained``);
both serve ``eval`` and ``predict`` when they name their classes. A converted model is tested with
the recipe given to ``eval``, or, in ``predict``, on its own default input (frames, crop and
sampling rate of the variant it was trained as) with the Kinetics mean and std both peers use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from vidgrid.config import Config, config_from_dict
from vidgrid.engine.build import build_model
from vidgrid.engine.checkpoint import CHECKPOINT_KEYS, load_model_weights
from vidgrid.errors import CheckpointError
from vidgrid.models import create_model
from vidgrid.tasks import Task, task_class
from vidgrid.torch_file import read_torch_file

CONVERTED_KEYS = ("model", "model_name", "num_classes", "converted_from")


@dataclass(frozen=True)
class Weights:
    """The weights of one file and what it says about them."""

    path: Path
    state: dict[str, Tensor]
    model_name: str
    classes: list[str] | None
    """Class names, index = label (None: a converted file without ``--classes``)."""
    config: Config | None
    """The run config of a training checkpoint (None for a converted file)."""
    task: str = "classification"
    """The task the weights were trained for (a converted file: classification)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Builder options a converted model needs beyond its registered variant (e.g. ``nonlocal_form``)."""
    train_state: dict[str, Any] = field(default_factory=dict)
    """A training checkpoint's counters and metrics (``TrainState``; empty for a converted file)."""


def load_weights(path: str | Path) -> Weights:
    """Read a training checkpoint or a converted file; anything else is a one-line :class:`CheckpointError`."""
    path = Path(path)
    obj = read_torch_file(path)
    if isinstance(obj, dict) and all(k in obj for k in CHECKPOINT_KEYS):
        cfg = config_from_dict(obj["config"], where=f"{path}: checkpoint config")
        state = dict((obj.get("train") or {}).get("state") or {})
        return Weights(path, dict(obj["model"]), cfg.model.name, list(obj["classes"]), cfg, checkpoint_task(obj),
                       train_state=state)
    if isinstance(obj, dict) and all(k in obj for k in CONVERTED_KEYS):
        classes = list(obj["classes"]) if obj.get("classes") else None
        options = dict(obj.get("model_options") or {})
        return Weights(path, dict(obj["model"]), str(obj["model_name"]), classes, None, options=options)
    raise CheckpointError(
        f"{path}: not a vidgrid checkpoint (expected the keys {', '.join(CHECKPOINT_KEYS)}, "
        f"or {', '.join(CONVERTED_KEYS)} as written by vidgrid convert)"
    )


def checkpoint_task(ckpt: dict[str, Any]) -> str:
    """The task a checkpoint names; files written before tasks had names say ``multi_label: true`` or nothing."""
    if "task" in ckpt:
        return str(ckpt["task"])
    return "multi_label" if ckpt.get("multi_label") else "classification"


def load_pretrained(model: nn.Module, path: str, *, options: dict[str, Any], announce: bool) -> None:
    """Initialise ``model`` (built with the recipe's ``model.options``) from ``path`` (either kind of
    file). A classifier of another size keeps its fresh initialisation, said in one line when
    ``announce``; any other mismatch, of keys or of the options a converted model needs, is a one-line
    error."""
    weights = load_weights(path)
    for key, value in weights.options.items():
        if options.get(key) != value:
            raise CheckpointError(
                f"{path}: converted as {weights.model_name} with {key}={value}; set model.options.{key}={value}"
            )
    state = dict(weights.state)
    own = model.state_dict()
    resized = [k for k in state if k.startswith("head.") and k in own and state[k].shape != own[k].shape]
    for key in resized:
        state[key] = own[key]
    load_model_weights(model, state, source=path)
    if resized and announce:
        print(
            f"model.pretrained: classifier re-initialised for {_classes_of(own, resized)} classes "
            f"({path} has {_classes_of(weights.state, resized)}; {', '.join(resized)})",
            file=sys.stderr,
        )


def _classes_of(state: dict[str, Tensor], head_keys: list[str]) -> int:
    return int(state[head_keys[0]].shape[0])


def named_classes(weights: Weights) -> list[str]:
    """The file's class names, or an error telling how to add them to a converted file."""
    if weights.classes is None:
        raise CheckpointError(
            f"{weights.path}: converted weights without class names (convert again with --classes FILE)"
        )
    return weights.classes


def converted_config(model: nn.Module, model_name: str) -> Config:
    """A test config for a converted model: its default input (frames, crop, sampling rate)."""
    _, frames, crop, _ = model.default_input
    tree: dict[str, Any] = {
        "model": {"name": model_name},
        "data": {"frames": frames, "crop": crop, "sampling_rate": model.default_sampling_rate},
    }
    return config_from_dict(tree, where=f"default input of {model_name}")


def model_from_weights(weights: Weights, *, recipe: Config | None = None) -> tuple[nn.Module, Task, Config]:
    """The model in eval mode, its task (with the class names) and the config it is tested with: a
    checkpoint's run config; for a converted file ``recipe``, else the model's default input."""
    task = task_class(weights.task).for_run(named_classes(weights), weights.config)
    if weights.config is not None:
        cfg = weights.config
        model = build_model(cfg, num_classes=task.num_outputs)
    else:
        model = create_model(weights.model_name, num_classes=task.num_outputs, **weights.options)
        cfg = recipe if recipe is not None else converted_config(model, weights.model_name)
    model = task.attach(model)
    load_model_weights(model, weights.state, source=f"{weights.path} ({weights.model_name})")
    return task.for_inference(model).eval(), task, cfg
