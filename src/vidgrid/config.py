"""Run configuration: nested typed dataclasses, YAML recipes that override defaults, dotted overrides.

A recipe only lists what differs from the defaults below::

    model:
      name: x3d_s
    optim:
      lr: 1.6

and the command line overrides single keys: ``vidgrid train recipe.yaml optim.lr=0.2 data.flip=false``.
Unknown keys and values of the wrong type are a :class:`~vidgrid.errors.ConfigError` naming the key.
Derived values (the LR at a step, the multigrid segment at an epoch) come from pure functions in
``engine`` and ``multigrid``; nothing is written back into a config at run time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vidgrid.errors import ConfigError

PACKAGED_CONFIGS = Path(__file__).parent / "configs"

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


@dataclass
class DataConfig:
    """Where the videos are and how clips are sampled from them."""

    train_list: str = ""
    """Training annotations: a Kinetics-style list, SSv2 JSON, Charades CSV, or a folder per class."""
    val_list: str = ""
    """Validation annotations, same formats as ``train_list``."""
    root: str = ""
    """Folder that relative video paths are resolved against (default: each list's folder)."""
    format: str = "auto"
    """Annotation format: a registered one (``vidgrid.data.formats``), checked where the lists are read;
    ``auto`` lets the formats' detectors decide from the file type, extension and CSV header."""
    classes: str = ""
    """Optional ``classes.txt`` (one class name per line); default: ``classes.txt`` beside the list."""
    boxes: str = ""
    """Optional track file of the main object's boxes, CSV ``path,frame,x1,y1,x2,y2`` (source pixels,
    linearly interpolated between annotated frames); a list line may instead end with ``x1 y1 x2 y2``."""
    frames: int = 16
    """Base clip length T in frames (the multigrid schedule scales it)."""
    sampling_rate: int = 4
    """Base temporal stride τ in source frames."""
    crop: int = 224
    """Base training crop S (the multigrid schedule scales it)."""
    temporal_sampling: Literal["stride", "segment"] = "stride"
    """``stride``: random start and stride (Kinetics); ``segment``: one frame per equal segment (SSv2)."""
    spatial_sampling: Literal["rescale_crop", "resized_crop"] = "rescale_crop"
    """``rescale_crop``: short-side jitter then a random crop; ``resized_crop``: RandomResizedCrop."""
    min_short: int = 256
    """Smallest short side of the training jitter at crop S (scaled by s/S for smaller crops)."""
    max_short: int = 320
    """Largest short side of the training jitter."""
    flip: bool | None = None
    """Random horizontal flip; ``None`` = on unless the dataset's ``meta.json`` says it is flip-sensitive."""
    rand_augment: bool = False
    """RandAugment, one op sequence per clip applied to all its frames."""
    rand_augment_ops: int = 2
    """RandAugment: number of ops n."""
    rand_augment_magnitude: int = 9
    """RandAugment: magnitude m (0-10)."""
    mean: tuple[float, float, float] = KINETICS_MEAN
    """Per-channel mean of pixels in [0, 1], subtracted on the device."""
    std: tuple[float, float, float] = KINETICS_STD
    """Per-channel std of pixels in [0, 1], divided on the device."""
    workers: int = 4
    """DataLoader worker processes per training process."""
    max_retries: int = 10
    """How many replacement samples are tried when a video cannot be decoded."""
    loader_timeout_s: float = 600.0
    """Seconds training may wait for one batch before a stalled read or decode is an error (0 = wait forever)."""


@dataclass
class TaskConfig:
    """What is learned (see ``vidgrid.tasks.list_tasks()``)."""

    name: str = "classification"
    """Registered task: ``classification`` (one class per video; multi-label when the annotations
    are, as Charades' are), ``multi_label`` or ``sibling`` (classes and the main object's box)."""
    cls_weight: float = 1.0
    """Sibling task: weight of the classification loss (fixed weighting)."""
    box_weight: float = 1.0
    """Sibling task: weight of the box loss, GIoU loss + L1 on crop-normalised coordinates (fixed weighting)."""
    loss_weighting: Literal["fixed", "uncertainty"] = "fixed"
    """Sibling task: the weights above, or learned uncertainty weighting (Kendall et al., CVPR 2018)."""
    cls_grad_scale: float = 1.0
    """Sibling task: scale of the classification head's gradient into the backbone (0 detaches it)."""
    box_grad_scale: float = 1.0
    """Sibling task: scale of the box head's gradient into the backbone (0 detaches it)."""
    patience: int = 0
    """Sibling task: evaluations without improvement after which a head is reset to its best and frozen (0 = off)."""


@dataclass
class ModelConfig:
    """Which network to build (see ``vidgrid.models.list_models()``)."""

    name: str = "x3d_s"
    """Registered model name."""
    num_classes: int = 0
    """Classifier size; 0 = the number of classes in the annotations."""
    dropout: float | None = None
    """Dropout before the classifier; ``None`` = the model's own default."""
    drop_path: float | None = None
    """Stochastic depth rate; ``None`` = the model's own default."""
    options: dict[str, Any] = field(default_factory=dict)
    """Further keyword overrides for the model builder (e.g. ``{width_factor: 1.0}``)."""
    pretrained: str = ""
    """A vidgrid checkpoint to initialise the weights from (classifier re-initialised if sizes differ)."""
    channels_last: bool = False
    """Use the channels_last_3d memory format."""
    compile: bool = False
    """Wrap the model in ``torch.compile``."""


@dataclass
class MultigridConfig:
    """Multigrid training (Wu et al., CVPR 2020, §3.2)."""

    enabled: bool = False
    """Train on the multigrid schedule instead of one fixed shape."""
    long_cycle: bool = True
    """Cycle through the long-cycle base shapes within each LR stage."""
    short_cycle: bool = True
    """Cycle through smaller crops iteration by iteration."""
    long_cycle_factors: list[tuple[float, float]] = field(
        default_factory=lambda: [(0.25, 1 / math.sqrt(2)), (0.5, 1 / math.sqrt(2)), (0.5, 1.0), (1.0, 1.0)]
    )
    """(time, space) factors of the long-cycle shapes relative to the base T and S."""
    short_cycle_factors: list[float] = field(default_factory=lambda: [0.5, 1 / math.sqrt(2)])
    """Spatial factors of the short-cycle shapes relative to the base S (then the long-cycle shape)."""
    epoch_factor: float = 1.5
    """Total epochs relative to the baseline schedule."""
    min_frames: int = 3
    """Fewest frames of a long-cycle shape: a coarser one trades frames for crop at the same cost
    (Eq. 1 batch unchanged). 3 = the temporal kernel of the 3-D convolutions: fewer frames leave
    every temporal filter reading zero padding (T/4 = 2 frames of an 8-frame base); 1 = the paper's
    shapes as they are."""
    bn_base_size: int = 8
    """Clips per BatchNorm group at the long-cycle batch (sub-batch BN, multigrid paper §3.2 "Batch Normalization": 8). At
    tiny crops the coarse clips leave the deepest layers a handful of positions per clip, so groups
    of 8 give noisy statistics; a group as large as the batch keeps as many values per channel at
    every shape as the baseline's."""
    precise_bn_batches: int = 200
    """Before each validation, replace the BatchNorm running statistics by their average over this
    many training batches at the base shape (at most one pass over the data; 0 = off): the running
    statistics of a multigrid run mix every shape of its last epochs (PySlowFast:
    ``BN.USE_PRECISE_STATS``, 200 batches)."""


@dataclass
class OptimConfig:
    """Optimizer and its hyper-parameters."""

    name: Literal["sgd", "adamw"] = "sgd"
    """Optimizer."""
    lr: float = 0.1
    """Base learning rate at ``reference_batch``."""
    reference_batch: int = 0
    """Batch size that ``lr`` is given for (linear scaling rule); 0 = ``train.batch_size``."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = False
    """Nesterov momentum for SGD."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    weight_decay: float = 1e-4
    """Weight decay (never applied to norms, biases and position embeddings)."""
    backbone_lr_mult: float = 1.0
    """LR multiplier of the backbone when fine-tuning a pretrained model (the practitioner's notes: 0.1)."""
    clip_grad_norm: float = 0.0
    """Clip the gradient norm to this value; 0 = off."""


@dataclass
class ScheduleConfig:
    """Learning-rate policy over epochs (the multigrid LR multipliers come on top)."""

    policy: Literal["step", "cosine"] = "cosine"
    """``step``: relative LRs per stage; ``cosine``: half-period cosine to ``cosine_end``."""
    steps: list[int] = field(default_factory=lambda: [0])
    """Stage start epochs for ``step`` (also the multigrid long-cycle stages), starting with 0."""
    lrs: list[float] = field(default_factory=lambda: [1.0])
    """Relative LR of each stage for ``step``."""
    cosine_end: float = 0.01
    """Final LR of the cosine as a fraction of the base LR."""
    warmup_epochs: float = 0.0
    """Linear warm-up length in baseline epochs; multigrid warms up over the same share of its
    iterations."""
    warmup_start_factor: float = 0.01
    """Warm-up starts at this fraction of the base LR."""


@dataclass
class TrainConfig:
    """The training run."""

    epochs: int = 10
    """Baseline epochs (multigrid runs ``multigrid.epoch_factor`` × as many)."""
    batch_size: int = 8
    """Global base batch B over all processes."""
    seed: int = 0
    """Seed of the data order, augmentation and initialisation."""
    deterministic: bool = False
    """Deterministic algorithms (CPU runs resume to bit-identical results)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train; ``auto`` = CUDA when available."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Autocast precision (fp16 uses a grad scaler, CUDA only)."""
    mixup_alpha: float = 0.0
    """Mixup Beta(α, α); 0 = off (the practitioner's notes: 0.8)."""
    cutmix_alpha: float = 0.0
    """CutMix Beta(α, α); 0 = off (the practitioner's notes: 1.0)."""
    mix_switch_prob: float = 0.5
    """With both on, probability of CutMix instead of Mixup per batch."""
    label_smoothing: float = 0.0
    """Label smoothing of the (mixed) targets."""
    eval_every: int = 1
    """Validate every N epochs (and after the last one); 0 = only at the end."""
    checkpoint_every: int = 0
    """Also checkpoint every N iterations; 0 = only at epoch ends."""
    keep_checkpoints: int = 3
    """How many recent checkpoints to keep."""
    log_every: int = 10
    """Write a metrics line every N iterations."""


@dataclass
class EvalConfig:
    """Multi-view testing."""

    clips: int = 10
    """K uniformly spaced temporal clips per video."""
    crops: Literal[1, 3] = 3
    """Spatial crops per clip: 1 (center) or 3 (left/center/right, or top/center/bottom)."""
    crop: int = 0
    """Test crop size; 0 = ``data.crop`` (X3D tests at a larger crop than it trains on)."""
    short_side: int = 0
    """Short side the video is resized to before cropping; 0 = the test crop."""
    batch_size: int = 8
    """Videos per evaluation batch."""


@dataclass
class Config:
    """A complete run: recipe defaults plus overrides."""

    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    multigrid: MultigridConfig = field(default_factory=MultigridConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------------------------------
# loading


def resolve_recipe(path: str | Path) -> Path:
    """A recipe path as given, or the name of a packaged recipe (``demo`` → ``configs/demo.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    packaged = PACKAGED_CONFIGS / (p.name if p.suffix else f"{p.name}.yaml")
    if packaged.is_file():
        return packaged
    raise ConfigError(f"{path}: config file not found (nor a packaged recipe among {list_recipes()})")


def list_recipes() -> list[str]:
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the recipe at ``path`` (if any), then ``key=value`` overrides."""
    cfg = Config()
    if path is not None:
        recipe = resolve_recipe(path)
        try:
            tree = yaml.safe_load(recipe.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{recipe}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{recipe}: expected a mapping of sections (data:, model:, ...)")
        _merge(cfg, tree, where=str(recipe), prefix="")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. optim.lr=0.1")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        tree: dict[str, Any] = value
        for part in reversed(key.split(".")):
            tree = {part: tree}
        _merge(cfg, tree, where="command line", prefix="")
    validate(cfg)
    return cfg


def config_from_dict(tree: dict[str, Any], *, where: str = "saved config") -> Config:
    """A Config from a plain nested dict (as :func:`config_to_dict` writes it), checked like a recipe."""
    cfg = Config()
    _merge(cfg, tree, where=where, prefix="")
    validate(cfg)
    return cfg


def _merge(obj: Any, tree: dict[str, Any], *, where: str, prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{where}: unknown config key '{dotted}' (valid: {', '.join(prefix + n for n in names)})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{dotted}' is a section; expected a mapping")
            _merge(current, value, where=where, prefix=dotted + ".")
        else:
            setattr(obj, key, _coerce(value, hints[key], dotted, where))


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    """``value`` converted to the annotated type ``hint``, or a ConfigError naming ``key``."""
    try:
        return coerce(value, hint)
    except ValueError as e:
        raise ConfigError(f"{where}: '{key}' = {value!r}: expected {e}") from None


def coerce(value: Any, hint: Any) -> Any:
    """``value`` as an instance of the type ``hint`` (bool, int, float, str, ``Literal``, lists, tuples,
    dicts, unions), as YAML gives it: integers where a float is expected, lists for tuples, ``5e-5``
    read as a string. A ValueError says what was expected; other types pass unchecked."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arm in (a for a in args if a is not type(None)):
            with contextlib.suppress(ValueError):
                return coerce(value, arm)
    elif origin is Literal:
        if value in args and not isinstance(value, bool):  # True == 1
            return value
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) == len(args):
                    return tuple(coerce(v, a) for v, a in zip(value, args))
            else:
                items = [coerce(v, args[0] if args else Any) for v in value]
                return tuple(items) if origin is tuple else items
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            return dict(value)
    elif hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        return _finite_number(value)
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ValueError(describe(hint))


def _finite_number(value: Any) -> float:
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as a string
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is None:
        raise ValueError(describe(float))
    if not math.isfinite(number):
        raise ValueError("a finite number")
    return number


def describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like to a user (``a list of 4, each an integer``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return f"one of {', '.join(map(repr, args))}"
    if origin in (typing.Union, types.UnionType):
        texts = [describe(a) for a in args if a is not type(None)]
        text = texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} or {texts[-1]}"
        return f"{text}, or null" if type(None) in args else text
    if origin in (list, tuple):
        if not args or args[-1] is Ellipsis or origin is list:
            return f"a list, each {describe(args[0])}" if args else "a list"
        if len(set(args)) == 1:
            return f"a list of {len(args)}, each {describe(args[0])}"
        return f"a list of ({'; '.join(describe(a) for a in args)})"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null", dict: "a mapping"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def validate(cfg: Config) -> None:
    """Range checks that need no data or model: one ConfigError per problem, naming the key."""
    checks = [
        (cfg.data.frames >= 1, "data.frames", "an integer >= 1"),
        (cfg.data.sampling_rate >= 1, "data.sampling_rate", "an integer >= 1"),
        (cfg.data.crop >= 8, "data.crop", "an integer >= 8"),
        (0 < cfg.data.min_short <= cfg.data.max_short, "data.min_short", "0 < min_short <= data.max_short"),
        (all(s > 0 for s in cfg.data.std), "data.std", "positive values"),
        (cfg.data.workers >= 0, "data.workers", "an integer >= 0"),
        (cfg.data.max_retries >= 0, "data.max_retries", "an integer >= 0"),
        (cfg.data.loader_timeout_s >= 0, "data.loader_timeout_s", "a number >= 0 (0 = wait forever)"),
        (0 <= cfg.data.rand_augment_magnitude <= 10, "data.rand_augment_magnitude", "an integer in 0..10"),
        (cfg.model.num_classes >= 0, "model.num_classes", "an integer >= 0 (0 = from the annotations)"),
        (cfg.model.dropout is None or 0 <= cfg.model.dropout < 1, "model.dropout", "a number in [0, 1)"),
        (cfg.model.drop_path is None or 0 <= cfg.model.drop_path < 1, "model.drop_path", "a number in [0, 1)"),
        (cfg.optim.lr > 0, "optim.lr", "a positive number"),
        (cfg.optim.reference_batch >= 0, "optim.reference_batch", "an integer >= 0"),
        (cfg.optim.weight_decay >= 0, "optim.weight_decay", "a number >= 0"),
        (0 <= cfg.optim.momentum < 1, "optim.momentum", "a number in [0, 1)"),
        (cfg.optim.backbone_lr_mult >= 0, "optim.backbone_lr_mult", "a number >= 0"),
        (cfg.optim.clip_grad_norm >= 0, "optim.clip_grad_norm", "a number >= 0 (0 = off)"),
        (cfg.train.epochs >= 1, "train.epochs", "an integer >= 1"),
        (cfg.schedule.steps[:1] == [0], "schedule.steps", "stage start epochs beginning with 0"),
        (cfg.schedule.steps == sorted(set(cfg.schedule.steps)), "schedule.steps", "strictly increasing epochs"),
        (len(cfg.schedule.lrs) == len(cfg.schedule.steps), "schedule.lrs", "one relative LR per schedule.steps entry"),
        (all(s < cfg.train.epochs for s in cfg.schedule.steps), "schedule.steps", "stage starts below train.epochs"),
        (cfg.schedule.warmup_epochs >= 0, "schedule.warmup_epochs", "a number >= 0"),
        (cfg.train.batch_size >= 1, "train.batch_size", "an integer >= 1"),
        (cfg.train.mixup_alpha >= 0 and cfg.train.cutmix_alpha >= 0, "train.mixup_alpha", "alphas >= 0"),
        (0 <= cfg.train.label_smoothing < 1, "train.label_smoothing", "a number in [0, 1)"),
        (cfg.train.keep_checkpoints >= 1, "train.keep_checkpoints", "an integer >= 1"),
        (cfg.multigrid.epoch_factor > 0, "multigrid.epoch_factor", "a positive number"),
        (cfg.multigrid.min_frames >= 1, "multigrid.min_frames", "an integer >= 1"),
        (cfg.multigrid.bn_base_size >= 1, "multigrid.bn_base_size", "an integer >= 1"),
        (cfg.multigrid.precise_bn_batches >= 0, "multigrid.precise_bn_batches", "an integer >= 0"),
        (cfg.eval.clips >= 1, "eval.clips", "an integer >= 1"),
        (cfg.eval.crop >= 0, "eval.crop", "an integer >= 0 (0 = data.crop)"),
        (cfg.eval.short_side == 0 or cfg.eval.short_side >= (cfg.eval.crop or cfg.data.crop), "eval.short_side",
         "0 or at least the test crop"),
        (cfg.eval.batch_size >= 1, "eval.batch_size", "an integer >= 1"),
        (cfg.task.patience >= 0, "task.patience", "an integer >= 0 (0 = off)"),
    ]
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"'{key}' = {_get(cfg, key)!r}: expected {expected}")


def _get(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (tuples as lists), as written to ``config.yaml`` in the run folder."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
