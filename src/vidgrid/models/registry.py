"""A tiny model registry: ``@register_model`` on builder functions, ``create_model``, ``list_models``."""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from vidgrid.errors import ConfigError

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name (``x3d_s``); duplicates are a programming error."""
    name = fn.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is already registered")
    _BUILDERS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_BUILDERS)


def create_model(name: str, num_classes: int = 400, **overrides) -> nn.Module:
    """Build a registered model; unknown names and options are one-line errors listing the valid ones."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model '{name}' (valid: {', '.join(list_models())})")
    builder = _BUILDERS[name]
    params = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [n for n in params if n != "num_classes"]
        for key in overrides:
            if key not in params:
                raise ConfigError(f"model '{name}' has no option '{key}' (valid: {', '.join(valid)})")
    return builder(num_classes=num_classes, **overrides)
