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
from pathlib import Path
from typing import Any, Literal

import yaml

from vidgrid.config.sections import (
    KINETICS_MEAN,
    KINETICS_STD,
    Config,
    DataConfig,
    DatasetConfig,
    DetectionConfig,
    EvalConfig,
    ExpandConfig,
    ModelConfig,
    MultigridConfig,
    MultiTrainConfig,
    OptimConfig,
    ScheduleConfig,
    TaskConfig,
    TrainConfig,
)
from vidgrid.errors import ConfigError

PACKAGED_CONFIGS = Path(__file__).parent.parent / "configs"

__all__ = [
    "KINETICS_MEAN", "KINETICS_STD", "Config", "DataConfig", "DatasetConfig", "DetectionConfig", "EvalConfig",
    "ExpandConfig", "ModelConfig", "MultigridConfig", "MultiTrainConfig", "OptimConfig", "ScheduleConfig", "TaskConfig",
    "TrainConfig", "coerce", "config_from_dict",
    "config_to_dict", "describe", "list_recipes", "load_config", "resolve_recipe", "save_config",
    "split_overrides", "validate",
]



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
        _apply_recipe(cfg, resolve_recipe(path), inheriting=())
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


def _apply_recipe(cfg: Config, recipe: Path, *, inheriting: tuple[Path, ...]) -> None:
    """Merge ``recipe`` into ``cfg``, after the recipe it names in ``base:`` (a path beside it, or a
    packaged recipe's name), so a variant lists only what differs from the recipe it builds on."""
    try:
        tree = yaml.safe_load(recipe.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{recipe}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{recipe}: expected a mapping of sections (data:, model:, ...)")
    if "base" in tree:
        base = tree.pop("base")
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{recipe}: 'base' = {base!r}: expected the path or name of the recipe this one builds on")
        beside = recipe.parent / base
        try:
            parent = beside.resolve() if beside.is_file() else resolve_recipe(base).resolve()
        except ConfigError:
            raise ConfigError(f"{recipe}: 'base' = {base!r}: expected a recipe file beside it ({beside} is not one) "
                              f"or a packaged recipe among {list_recipes()}") from None
        chain = (*inheriting, recipe.resolve())
        if parent in chain:
            raise ConfigError(f"{recipe}: 'base' = {base!r} leads back to {parent.name}: recipes cannot build on themselves")
        _apply_recipe(cfg, parent, inheriting=chain)
    _merge(cfg, tree, where=str(recipe), prefix="")


_SECTIONS = frozenset(f.name for f in dataclasses.fields(Config))


def _is_override(word: str) -> bool:
    """Whether a command-line word is a ``KEY=VALUE`` override: a dotted key that starts at a config
    field (``data.frames=16``, ``datasets=[...]``), so a file named ``a=1.mp4`` is not one."""
    key, sep, _ = word.partition("=")
    parts = key.split(".")
    return bool(sep) and parts[0] in _SECTIONS and all(p.isidentifier() for p in parts)


def split_overrides(words: list[str]) -> tuple[list[str], list[str]]:
    """``words`` without their overrides (:func:`_is_override`), and the overrides in their order: on a
    command line they may stand anywhere, also after an option that takes a list (``--seeds 0 1``)."""
    rest: list[str] = []
    overrides: list[str] = []
    for word in words:
        (overrides if _is_override(word) else rest).append(word)
    return rest, overrides


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
        elif (item := _item_section(hints[key])) is not None:
            setattr(obj, key, _merge_list(item, value, where=where, key=dotted))
        else:
            setattr(obj, key, _coerce(value, hints[key], dotted, where))


def _item_section(hint: Any) -> type | None:
    """The dataclass of a ``list[Section]`` field (``datasets``), else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def _merge_list(section: type, value: Any, *, where: str, key: str) -> list[Any]:
    """A list of mappings, each merged into a fresh ``section`` (keys named ``datasets[0].name``)."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: '{key}' = {value!r}: expected a list of mappings")
    items = []
    for i, tree in enumerate(value):
        item = section()
        _merge(item, tree, where=where, prefix=f"{key}[{i}].")
        items.append(item)
    return items


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
        (cfg.data.cache_gb >= 0, "data.cache_gb", "a number of GB >= 0 (0 = no cache)"),
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
        (0 <= cfg.detection.train_iou < 1, "detection.train_iou", "a number in [0, 1)"),
        (0 <= cfg.detection.proposal_score < 1, "detection.proposal_score", "a number in [0, 1)"),
    ]
    _raise_first_failure(cfg, checks)
    validate_datasets(cfg)


def validate_datasets(cfg: Config) -> None:
    """A multi-dataset run: ``task.name`` multitrain with at least two named datasets, each with its
    lists and sensible weights; the single-dataset lists in ``data`` stay empty."""
    m = cfg.multitrain
    checks = [
        (m.hidden >= 1, "multitrain.hidden", "an integer >= 1"),
        (min(m.informative_weight, m.variance_weight, m.covariance_weight, m.projection_weight) >= 0,
         "multitrain.informative_weight", "weights >= 0 (also variance_, covariance_ and projection_weight)"),
    ]
    if not cfg.datasets:
        checks.append((cfg.task.name != "multitrain", "task.name", "a 'datasets' list of two or more datasets for multitrain"))
    else:
        checks += [
            (cfg.task.name == "multitrain", "task.name", "multitrain when 'datasets' is given"),
            (len(cfg.datasets) >= 2, "datasets", "two or more datasets"),
            (not cfg.data.train_list and not cfg.data.val_list, "data.train_list", "empty when 'datasets' names the lists"),
        ]
        names = [d.name for d in cfg.datasets]
        for i, d in enumerate(cfg.datasets):
            at = f"datasets[{i}]"
            checks += [
                (bool(d.name) and all(c.isalnum() or c in "_-" for c in d.name), f"{at}.name",
                 "a name of letters, digits, '_' or '-'"),
                (d.name not in names[:i], f"{at}.name", "a name no other dataset has"),
                (bool(d.train_list), f"{at}.train_list", "the training annotation list"),
                (bool(d.val_list), f"{at}.val_list", "the validation annotation list"),
                (d.sampling_rate >= 0, f"{at}.sampling_rate", "an integer >= 0 (0 = data.sampling_rate)"),
                (d.eval_clips >= 0, f"{at}.eval_clips", "an integer >= 0 (0 = eval.clips)"),
                (d.eval_crops in (0, 1, 3), f"{at}.eval_crops", "0 (= eval.crops), 1 or 3"),
                (d.loss_weight >= 0, f"{at}.loss_weight", "a number >= 0"),
                (d.sampling_weight > 0, f"{at}.sampling_weight", "a positive number"),
            ]
    _raise_first_failure(cfg, checks)


def _raise_first_failure(cfg: Config, checks: list[tuple[bool, str, str]]) -> None:
    """A ConfigError naming the key, its value and what is expected, for the first failed ``(ok, key, expected)``."""
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"'{key}' = {_get(cfg, key)!r}: expected {expected}")


def _get(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        name, _, index = part.partition("[")
        obj = getattr(obj, name)
        if index:
            obj = obj[int(index.rstrip("]"))]
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
