"""A training run's long-lived pieces and their construction: the :class:`Run` the loop works on,
:func:`setup` (task, data, schedule, model, optimizer, everything checked before the first step) and
:func:`restore` (the state of a resumed run, part by part: :mod:`vidgrid.engine.state`).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidgrid.config import Config, config_to_dict, save_config
from vidgrid.data.dataset import VideoClipDataset, VideoTestDataset
from vidgrid.data.multi_dataset import MultiClipDataset
from vidgrid.engine import distributed as D
from vidgrid.engine.build import build_model, check_shapes, load_split, prepare_model, train_dataset
from vidgrid.engine.checkpoint import load_checkpoint, load_latest, load_model_weights
from vidgrid.engine.evaluate import eval_datasets
from vidgrid.engine.logging import MetricsLogger
from vidgrid.engine.mixup import Mixer, mixer_from_config
from vidgrid.engine.optim import lr_at, optimizer_from_config, scaled_lr
from vidgrid.engine.run_folder import prepare_run_folder
from vidgrid.engine.state import ProcessStreams, SamplerPosition, SkippedVideos, Stateful, TrainState, load_parts
from vidgrid.engine.stopping import StopRequest
from vidgrid.engine.subbatch_bn import convert_to_sub_batch_norm
from vidgrid.engine.weights import load_pretrained
from vidgrid.errors import ConfigError, VidgridError
from vidgrid.multigrid.schedule import MultigridSchedule, schedule_from_config
from vidgrid.tasks import Task, task_for

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Run:
    """The long-lived pieces of a training run, built once; a multigrid shape change swaps only the batch shapes."""

    cfg: Config
    out_dir: Path
    env: D.DistEnv
    model: nn.Module
    """The user's model: its state dict is what checkpoints hold; evaluation calls it directly."""
    net: nn.Module
    """What the training step calls: ``model`` inside DDP and/or torch.compile."""
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    mixer: Mixer
    task: Task
    lr_at: Callable[[float], float]
    schedule: MultigridSchedule
    train_set: VideoClipDataset | MultiClipDataset
    val_sets: dict[str, VideoTestDataset]
    """The validation set of each of the task's :meth:`~vidgrid.tasks.Task.evaluation_tasks`."""
    state: TrainState
    position: SamplerPosition
    skipped: SkippedVideos
    logger: MetricsLogger | None
    """Rank 0 only."""
    stop: StopRequest
    last_checkpoint: Path | None = None

    def parts(self) -> dict[str, Stateful]:
        """The stateful parts of a checkpoint's ``train`` entry, in the order they are restored."""
        return {
            "state": self.state, "optimizer": self.optimizer, "scaler": self.scaler,
            "processes": ProcessStreams(self.env, self.mixer, self.state), "sampler": self.position,
            "skipped_videos": self.skipped,
        }

    @property
    def autocast(self) -> torch.autocast:
        dtype = AUTOCAST[self.cfg.train.precision]
        return torch.autocast(self.env.device.type, dtype=dtype, enabled=dtype is not None)


def setup(cfg: Config, out_dir: Path, env: D.DistEnv, stop: StopRequest, resume: str | None, *, overwrite: bool = False) -> Run:
    """Everything the loop needs, checked up front: task, data, schedule, model, optimizer, resumed state."""
    if cfg.train.precision == "fp16" and env.device.type != "cuda":
        raise ConfigError("'train.precision' = 'fp16' needs CUDA (use bf16 or fp32 on CPU)")
    seed_everything(cfg.train.seed)

    # task and data
    train_ann = load_split(cfg, "train")
    val_ann = load_split(cfg, "val")
    if val_ann.classes != train_ann.classes:
        raise ConfigError(f"'data.val_list' = {cfg.data.val_list!r}: its classes differ from the training list's")
    task = task_for(cfg.task.name, train_ann, cfg)
    if cfg.data.rand_augment and task.spatial_targets:
        raise ConfigError(f"'data.rand_augment': the {task.name} task's boxes do not follow RandAugment's rotate, "
                          "shear and translate (set it to false)")
    task.check_training_data(train_ann, source=cfg.data.train_list)
    train_set = train_dataset(cfg, train_ann, task)
    val_sets = eval_datasets(cfg, val_ann, task)
    if cfg.model.num_classes not in (0, train_ann.num_classes):
        raise ConfigError(
            f"'model.num_classes' = {cfg.model.num_classes}: data.train_list has {train_ann.num_classes} classes (use 0)"
        )

    # schedule, checked against the model and the process count before the first step
    schedule = schedule_from_config(cfg, processes=env.world_size)
    model = build_model(cfg, num_classes=task.num_outputs)
    check_shapes(model, schedule.shapes, model_name=cfg.model.name)
    if cfg.model.pretrained:
        load_pretrained(model, cfg.model.pretrained, options=cfg.model.options, announce=env.is_main)
    model = task.attach(model)

    # model on the device, BN over groups of schedule.bn_base_size clips (baseline too: X3D supp. §A.3)
    convert_to_sub_batch_norm(model)
    model = prepare_model(model, cfg, env.device)
    base_lr = scaled_lr(cfg.optim.lr, cfg.train.batch_size, cfg.optim.reference_batch)
    optimizer = optimizer_from_config(model, cfg.optim, lr=base_lr)
    net = D.wrap_ddp(model, env, find_unused_parameters=task.freezes_parameters)
    if cfg.model.compile:
        net = torch.compile(net)

    state = TrainState()
    run = Run(
        cfg=cfg, out_dir=out_dir, env=env, model=model, net=net, optimizer=optimizer,
        scaler=torch.amp.GradScaler(env.device.type, enabled=cfg.train.precision == "fp16"),
        mixer=mixer_from_config(cfg.train, task, seed=cfg.train.seed * 1000 + env.rank), task=task,
        lr_at=partial(lr_at, base_lr=base_lr, warmup_share=cfg.schedule.warmup_epochs / cfg.train.epochs,
                      warmup_start_factor=cfg.schedule.warmup_start_factor, lr_factor=schedule.lr_factor,
                      progress=schedule.progress),
        schedule=schedule, train_set=train_set, val_sets=val_sets, state=state, position=SamplerPosition(state),
        skipped=SkippedVideos([train_set, *val_sets.values()]), logger=None, stop=stop,
    )
    resumed = restore(run, resume)
    if env.is_main:
        prepare_run_folder(out_dir, overwrite=overwrite)
        save_config(cfg, out_dir / "config.yaml")
        run.logger = MetricsLogger(
            out_dir, loggers=cfg.train.loggers, config=config_to_dict(cfg),
            resume_iteration=run.state.iteration if resumed else None,
        )
        print(describe(run, resumed), file=sys.stderr, flush=True)
    return run


def restore(run: Run, resume: str | None) -> Path | None:
    """Load the training state from ``resume`` (``auto`` = the newest readable checkpoint of the run
    folder, none = start fresh); returns the checkpoint used."""
    if resume is None:
        return None
    if resume == "auto":
        found = load_latest(run.out_dir / "checkpoints")
        if found is None:
            if run.env.is_main:
                print(f"--resume auto: no checkpoint in {run.out_dir / 'checkpoints'}; starting from scratch", file=sys.stderr)
            return None
        ckpt, path = found
    else:
        path = Path(resume)
        ckpt = load_checkpoint(path)
    if "train" not in ckpt:
        raise VidgridError(f"{path}: holds weights only, no training state to resume (use model.pretrained={path})")
    load_model_weights(run.model, ckpt["model"], source=str(path))
    load_parts(run.parts(), ckpt["train"])
    if "value" in run.state.best:  # written when a run kept one best metric: the task's best_metric
        run.state.best = {run.task.best_metric: run.state.best}
    run.last_checkpoint = path
    return path


def describe(run: Run, resumed: Path | None) -> str:
    cfg, schedule = run.cfg, run.schedule
    shapes = ", ".join(f"{seg.start_epoch}-{seg.end_epoch}: {seg.shape}" for seg in schedule.segments)
    start = f"resuming from {resumed} at epoch {run.state.epoch + 1} iteration {run.state.iteration}" if resumed else "starting"
    return (
        f"{start}: {cfg.model.name}, {len(run.train_set)} training / {sum(map(len, run.val_sets.values()))} validation "
        f"{run.task.sample_unit}, "
        f"{len(run.task.classes)} classes ({run.task.name}), {schedule.total_epochs} epochs "
        f"({'multigrid' if schedule.multigrid else 'baseline'}; epochs {shapes}), "
        f"{run.env.world_size} process(es) on {run.env.device}; run folder {run.out_dir}"
        + "".join(f"\nnote: {note}" for note in (schedule.note, run.task.training_note(cfg.train.batch_size)) if note)
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
