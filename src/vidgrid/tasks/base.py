"""What a task is and how tasks are found by name.

A *task* is what a model learns from the annotations: it owns everything that depends on it and
nothing that does not. The engine trains, evaluates and predicts through this interface only, so a
new kind of head (boxes beside the classes, one head per dataset) is one new task file, its
registration in :mod:`vidgrid.tasks` and its tests.

The pieces, in the order a run uses them:

- **model**: :meth:`Task.attach` puts the task's head(s) on a backbone built with
  ``num_classes = task.num_outputs`` (models supply ``forward_features`` and ``feature_channels``);
- **data**: :meth:`Task.target` turns an annotation :class:`~vidgrid.data.annotations.Sample` into the
  target tensor the loader batches (it runs in the loader workers); the datasets call
  :meth:`Task.clip_target` with where each clip was cut (:class:`~vidgrid.data.boxes.ClipView`), which a
  task whose targets follow the pixels (boxes) overrides;
- **forward**: :meth:`Task.forward` runs the network on the clips (and, for a task whose network
  reads them, the boxes in the targets);
- **training**: :meth:`Task.soft_targets` (label smoothing) and :meth:`Task.mix_targets` (the
  target side of Mixup / CutMix; a task whose targets cannot be mixed sets ``mixable = False``), and
  :meth:`Task.losses` (the total of :meth:`Task.loss` and its named parts, each logged);
- **evaluation**: :meth:`Task.aggregate_views` (K clips × crops of a video → its scores),
  :meth:`Task.metrics`, :attr:`Task.best_metric` (which checkpoint is the best), the per-video
  record of ``predictions.jsonl`` (:meth:`Task.prediction_record`), the plots
  (:meth:`Task.write_plots`) and a one-line summary (:meth:`Task.format_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from vidgrid.config import Config, TaskConfig
from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.boxes import ClipView
from vidgrid.errors import ConfigError
from vidgrid.registry import Registry


class Task:
    """The interface the engine relies on; subclasses implement every method that raises here."""

    name: ClassVar[str]
    """Registered name (``task.name`` in a recipe, ``task`` in a checkpoint)."""
    best_metric: ClassVar[str]
    """The validation metric (higher is better) that picks ``checkpoints/best.pt`` and ``summary.json``'s ``best``."""
    best_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics that each keep a best checkpoint, ``checkpoints/best-<metric>.pt`` (a task with several
    heads); empty: :attr:`best_metric` alone, as ``best.pt``."""
    mixable: ClassVar[bool] = True
    """Whether Mixup / CutMix may mix this task's targets."""
    spatial_targets: ClassVar[bool] = False
    """Whether the targets are positions in the clip (boxes): the run then refuses RandAugment, whose
    rotate / shear / translate would move the pixels but not the boxes."""
    box_inputs: ClassVar[bool] = False
    """Whether the network also reads boxes from the targets (:meth:`forward`): predicting then needs
    the boxes (``vidgrid predict --boxes``)."""
    sample_unit: ClassVar[str] = "videos"
    """What one sample of the annotations is, as the run's log counts it (a keyframe for detection)."""
    multi_label_variant: ClassVar[str | None] = None
    """The task that replaces this one on multi-label annotations (Charades' CSV), if any."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = list(classes)

    @classmethod
    def from_config(cls, classes: Sequence[str], settings: TaskConfig | None) -> Task:
        """The task with the recipe's ``task`` section (None: the defaults); most tasks need only the classes."""
        return cls(classes)

    @classmethod
    def for_run(cls, classes: Sequence[str], cfg: Config | None) -> Task:
        """The task of a run config (None: the defaults; a task reading more than the ``task``
        section, such as one head per entry of ``datasets``, overrides this); by default :meth:`from_config`."""
        return cls.from_config(classes, cfg.task if cfg is not None else None)

    def best_checkpoints(self) -> dict[str, str]:
        """Metric -> the file name of its best checkpoint in ``checkpoints/``."""
        if not self.best_metrics:
            return {self.best_metric: "best.pt"}
        return {metric: f"best-{metric}.pt" for metric in self.best_metrics}

    @property
    def num_outputs(self) -> int:
        """Outputs of the backbone's default classifier."""
        return len(self.classes)

    # model
    def attach(self, model: nn.Module) -> nn.Module:
        """The trained network: ``model`` with this task's head(s) on its features."""
        return model

    def forward(self, model: nn.Module, clips: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The network's outputs for a batch of clips and their targets (training: ``(B, ...)``; testing:
        one target per view, ``(B·V, ...)``); a task whose network also reads part of the targets
        (the boxes to classify) overrides it. Default: ``model(clips)``."""
        return model(clips)

    def for_inference(self, model: nn.Module) -> nn.Module:
        """The trained network for evaluation, prediction and export: a task whose network has parts
        that only train (projection heads) drops them here; by default unchanged."""
        return model

    # data
    def target(self, sample: Sample) -> torch.Tensor:
        raise NotImplementedError

    def clip_target(self, sample: Sample, views: Sequence[ClipView]) -> torch.Tensor:
        """The target of a training clip (one view) or of a test video's V views, given where each
        was cut; the default ignores the views: :meth:`target`."""
        return self.target(sample)

    def training_note(self, batch: int) -> str:
        """A line for the run's start about how this task trains at ``batch`` clips a step (all
        processes together), or ``""``; by default nothing."""
        return ""

    def check_training_data(self, annotations: Annotations, *, source: str) -> None:
        """Refuse training annotations this task cannot learn from (a ConfigError naming
        ``data.train_list`` = ``source``); by default any will do."""

    # training
    def soft_targets(self, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        raise NotImplementedError

    def mix_targets(self, targets: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
        """Targets of clips mixed as ``λ·x + (1-λ)·x[perm]`` (Mixup; CutMix with λ the area kept)."""
        return targets * lam + targets[perm] * (1.0 - lam)

    def mix_partners(self, targets: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        """The partner of each clip in Mixup / CutMix given a random permutation ``perm``; a task whose
        clips may only mix within groups (datasets with their own label spaces) restricts it."""
        return perm

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """``total`` (what trains: :meth:`loss`) and, for the log, its named parts (none by default)."""
        return {"total": self.loss(outputs, targets)}

    def after_validation(self, model: nn.Module, improved: Sequence[str]) -> list[str]:
        """Called on every process after each validation with the metrics of :meth:`best_checkpoints`
        that improved; a task may change its head(s) here (per-head early stop). Returns messages for
        the log (none by default)."""
        return []

    @property
    def freezes_parameters(self) -> bool:
        """Whether :meth:`after_validation` may stop training some parameters mid-run; a multi-process
        run then lets DistributedDataParallel find the parameters without gradients each step."""
        return False

    # evaluation
    def evaluation_tasks(self) -> dict[str, Task]:
        """Name -> the task that scores that validation set (one per dataset of a multi-dataset run);
        by default one unnamed set scored by this task."""
        return {"": self}

    def combine_metrics(self, per_part: dict[str, dict[str, float]]) -> dict[str, float]:
        """The validation metrics from each set's (keys of :meth:`evaluation_tasks`)."""
        return per_part[""]

    def for_heads(self, names: Sequence[str]) -> Task:
        """The task predicting with the heads ``names`` only (``vidgrid predict --head``); a task with one
        head takes none."""
        if names:
            raise ConfigError(f"--head {names[0]}: the {self.name} task has a single head")
        return self

    def aggregate_views(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(B, V, ...)`` outputs of the V views of B videos → ``(B, ...)`` video scores."""
        raise NotImplementedError

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def empty_metrics(self) -> dict[str, float]:
        """The metrics of an evaluation that scored no video (every key :meth:`metrics` returns, at 0)."""
        raise NotImplementedError

    def record(self, scores: torch.Tensor, target: torch.Tensor, *, top: int = 5) -> dict[str, Any]:
        """One video's ``predictions.jsonl`` fields besides its ``path``."""
        raise NotImplementedError

    def prediction(self, scores: torch.Tensor, *, top: int) -> dict[str, Any]:
        """One video's ``vidgrid predict`` fields besides its ``video`` (no target known)."""
        raise NotImplementedError

    def format_prediction(self, prediction: dict[str, Any]) -> list[str]:
        """:meth:`prediction` as table rows for the terminal."""
        raise NotImplementedError

    def prediction_figure(self, path: Path, video: Path, scores: torch.Tensor, target: torch.Tensor) -> Path | None:
        """``vidgrid predict --figures``: a picture of one video's prediction written to ``path``
        (``target`` as :meth:`clip_target` gave it for the test views); None: the task draws none."""
        return None

    def write_plots(self, out_dir: Path, scores: torch.Tensor, targets: torch.Tensor) -> list[Path]:
        """Task-specific figures of an evaluation (none by default)."""
        return []

    def format_metrics(self, metrics: dict[str, float]) -> str:
        raise NotImplementedError

    def summary_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The metrics as ``summary.json`` and ``eval.json`` hold them (a task may nest flat keys)."""
        return metrics


TASKS: Registry[type[Task]] = Registry(
    "task", lambda name, valid: ConfigError(f"'task.name' = {name!r}: expected one of {', '.join(valid)}")
)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available as ``task.name = cls.name``."""
    return TASKS.register(cls.name, cls)


def list_tasks() -> list[str]:
    return TASKS.names()


def task_class(name: str) -> type[Task]:
    """The registered task ``name``; an unknown one is a ConfigError naming ``task.name`` and the valid names."""
    return TASKS.lookup(name)


def task_for(name: str, annotations: Annotations, cfg: Config | None = None) -> Task:
    """The task ``name`` for these annotations and the run config ``cfg`` (:meth:`Task.for_run`; None:
    the defaults); on multi-label annotations a task with a :attr:`~Task.multi_label_variant` becomes
    that one (the annotation format decides, as Charades' CSV does for ``classification``)."""
    cls = task_class(name)
    if annotations.multi_label and cls.multi_label_variant:
        cls = task_class(cls.multi_label_variant)
    return cls.for_run(annotations.classes, cfg)
