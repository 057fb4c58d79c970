"""Config → components: the thin factories between a recipe and the typed library functions.

Everything here is at the edge (it reads the run :class:`~vidgrid.config.Config`); the modules it
calls take explicit arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from vidgrid.config import Config
from vidgrid.data.annotations import Annotations, load_annotations
from vidgrid.data.formats.ava import ProposalSettings
from vidgrid.data.dataset import VideoClipDataset
from vidgrid.data.multi_dataset import MultiClipDataset, merge_annotations, split_annotations
from vidgrid.errors import ConfigError, DataError, ModelError
from vidgrid.models import create_model
from vidgrid.tasks import Task
from vidgrid.types import ClipShape


# --------------------------------------------------------------------------------------------------
# data


def load_split(cfg: Config, which: str) -> Annotations:
    """The annotations of ``data.train_list`` or ``data.val_list`` (``which`` = ``train`` / ``val``);
    with ``datasets``, every dataset's merged (:func:`~vidgrid.data.multi_dataset.merge_annotations`)."""
    if cfg.datasets:
        return merge_annotations([(d.name, load_dataset_split(cfg, k, which)) for k, d in enumerate(cfg.datasets)])
    source = getattr(cfg.data, f"{which}_list")
    if not source:
        raise ConfigError(f"'data.{which}_list' is empty: give the {which} annotation list (or folder)")
    root = cfg.data.root or None
    if root is not None and not Path(root).is_dir():
        raise ConfigError(f"'data.root' = {root!r}: folder does not exist")
    # keyframe data (AVA): training boxes with the proposals that overlap them, test boxes the confident ones
    proposals = ProposalSettings(
        _optional_file(cfg, f"{which}_proposals"), _optional_file(cfg, "exclusions"),
        train_iou=cfg.detection.train_iou if which == "train" else None, min_score=cfg.detection.proposal_score,
    )
    try:
        return load_annotations(source, root=root, format=cfg.data.format, classes=cfg.data.label_map or cfg.data.classes or None,
                                boxes=cfg.data.boxes or None, proposals=proposals)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not a text file"
        raise DataError(f"{source}: cannot read the annotations ({reason})") from None


def _optional_file(cfg: Config, key: str) -> Path | None:
    """The file named by ``data.<key>`` (None when empty); a missing one is a ConfigError naming the key."""
    value = getattr(cfg.data, key)
    if value and not Path(value).is_file():
        raise ConfigError(f"'data.{key}' = {value!r}: file not found")
    return Path(value) if value else None


def load_dataset_split(cfg: Config, k: int, which: str) -> Annotations:
    """The ``which`` list of ``datasets[k]``; a multi-label list needs ``loss: sigmoid``."""
    d = cfg.datasets[k]
    try:
        annotations = load_split(dataset_recipe(cfg, d.name), which)
    except ConfigError as e:
        raise ConfigError(f"'datasets[{k}]' ({d.name}): {e}") from None
    if annotations.multi_label and d.loss != "sigmoid":
        raise ConfigError(f"'datasets[{k}].loss' = {d.loss!r}: {getattr(d, which + '_list')} is multi-label; expected 'sigmoid'")
    return annotations


def dataset_recipe(cfg: Config, name: str) -> Config:
    """The single-dataset recipe of the dataset ``name`` of ``datasets``: its lists, clip sampling and
    test views in ``data`` and ``eval`` (0 = the recipe's own), its share of ``data.cache_gb``,
    everything else the recipe's."""
    d = next(d for d in cfg.datasets if d.name == name)
    data = dataclasses.replace(
        cfg.data, train_list=d.train_list, val_list=d.val_list, root=d.root, format=d.format, classes=d.classes,
        flip=d.flip, temporal_sampling=d.temporal_sampling, sampling_rate=d.sampling_rate or cfg.data.sampling_rate,
        cache_gb=cfg.data.cache_gb / len(cfg.datasets),
    )
    test = dataclasses.replace(cfg.eval, clips=d.eval_clips or cfg.eval.clips, crops=d.eval_crops or cfg.eval.crops)
    return dataclasses.replace(cfg, data=data, eval=test, datasets=[])


def use_flip(cfg: Config, annotations: Annotations) -> bool:
    """``data.flip``, or on unless the dataset's ``meta.json`` says it is flip-sensitive."""
    if cfg.data.flip is not None:
        return cfg.data.flip
    return not annotations.meta.get("flip_sensitive", False)


def train_dataset(cfg: Config, annotations: Annotations, task: Task) -> VideoClipDataset | MultiClipDataset:
    """The training clips of a recipe; with ``datasets``, each dataset's clips sampled its own way,
    mixed by their ``sampling_weight``."""
    if cfg.datasets:
        parts = split_annotations(annotations)
        return MultiClipDataset(annotations, [train_dataset(dataset_recipe(cfg, d.name), parts[d.name], task) for d in cfg.datasets],
                                sampling_weights=[d.sampling_weight for d in cfg.datasets], seed=cfg.train.seed)
    return VideoClipDataset(
        annotations, target=task.clip_target, base_frames=cfg.data.frames, sampling_rate=cfg.data.sampling_rate,
        base_crop=cfg.data.crop, temporal_sampling=cfg.data.temporal_sampling, spatial_sampling=cfg.data.spatial_sampling,
        min_short=cfg.data.min_short, max_short=cfg.data.max_short, flip=use_flip(cfg, annotations),
        rand_augment=(cfg.data.rand_augment_ops, cfg.data.rand_augment_magnitude) if cfg.data.rand_augment else None,
        max_retries=cfg.data.max_retries, seed=cfg.train.seed, cache_bytes=int(cfg.data.cache_gb * 2**30),
    )


# --------------------------------------------------------------------------------------------------
# model


def build_model(cfg: Config, *, num_classes: int) -> nn.Module:
    """The registered model ``model.name`` with the recipe's dropout, drop path and options; an unknown
    option or one of the wrong type (``width_factor: abc``) is a ConfigError naming ``model.options``."""
    for key in ("dropout", "drop_path"):
        if key in cfg.model.options:
            raise ConfigError(f"'model.options' = {cfg.model.options}: set {key} as 'model.{key}'")
    try:
        return create_model(
            cfg.model.name,
            num_classes=cfg.model.num_classes or num_classes,
            dropout=cfg.model.dropout,
            drop_path=cfg.model.drop_path,
            **cfg.model.options,
        )
    except ModelError as e:
        if e.option is None:
            raise
        raise ConfigError(f"'model.options' = {cfg.model.options}: {e}") from None


def check_shapes(model: nn.Module, shapes: Iterable[ClipShape], *, model_name: str) -> None:
    """Every clip shape of the run fits the model (frames and crop), checked before the first step."""
    for shape in sorted(set(shapes)):
        if shape.frames < model.min_frames:
            raise ConfigError(
                f"'data.frames': the run uses {shape} clips but {model_name} needs at least {model.min_frames} "
                f"frames (its temporal kernel); raise data.frames"
            )
        if shape.frames % model.frames_multiple:
            raise ConfigError(
                f"'data.frames': the run uses {shape} clips but {model_name} needs frames divisible by "
                f"{model.frames_multiple}"
            )
        if shape.crop % model.crop_multiple:
            raise ConfigError(
                f"'data.crop': the run uses {shape} clips but {model_name} needs a crop divisible by "
                f"{model.crop_multiple}"
            )


def prepare_model(model: nn.Module, cfg: Config, device: torch.device) -> nn.Module:
    """Move to the device, in channels_last_3d if asked."""
    model = model.to(device)
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model
