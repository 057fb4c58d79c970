"""A tiny model registry: each family registers its variant table (``register_family``); ``create_model``
builds a variant with options replacing fields of its config; ``list_models`` names them all.

One override rule for every family: a variant is a frozen config dataclass, and every option (``dropout``
and ``drop_path`` included) replaces the config field of that name (``dataclasses.replace``), its value
checked against the field's type first and the config's ``__post_init__`` checking ranges after
(:func:`check_ranges`). An unknown option, a value of the wrong type or out of range is one
:class:`~vidgrid.errors.ModelError` line naming the model and the option.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from vidgrid.config import coerce
from vidgrid.errors import ModelError
from vidgrid.registry import Registry


@dataclass(frozen=True)
class VariantBuilder:
    """The builder of one table entry: options replace fields of its config, then the family's model
    class builds it."""

    name: str
    config: Any
    """The variant's frozen config dataclass."""
    build: Callable[..., nn.Module]
    """``build(config, num_classes=...)``: the family's model class."""

    def resolve(self, **options: Any) -> Any:
        """The variant's config with ``options`` replacing its fields (values checked and coerced to the
        field types: lists become tuples, integers floats where a float is expected)."""
        hints = typing.get_type_hints(type(self.config))
        valid = sorted(f.name for f in dataclasses.fields(self.config))
        values = {}
        for key, value in options.items():
            if key not in valid:
                raise ModelError(f"{self.name}: unknown option '{key}' (valid: {', '.join(valid)})", option=key)
            try:
                values[key] = coerce(value, hints[key])
            except ValueError as e:
                message = f"{self.name} cannot be built with {key} {value!r}: expected {e}"
                raise ModelError(message, option=key) from None
        try:
            return dataclasses.replace(self.config, **values)
        except ModelError as e:
            raise ModelError(f"{self.name} cannot be built with {e}", option=e.option) from None

    def __call__(
        self, *, num_classes: int, dropout: float | None = None, drop_path: float | None = None, **options: Any
    ) -> nn.Module:
        """The model; ``dropout`` / ``drop_path`` (None: the variant's) replace config fields like options."""
        given = {key: value for key, value in (("dropout", dropout), ("drop_path", drop_path)) if value is not None}
        return self.build(self.resolve(**options, **given), num_classes=num_classes)


MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model", lambda name, valid: ModelError(f"unknown model '{name}' (valid: {', '.join(valid)})")
)
"""Model name -> ``builder(num_classes=..., dropout=..., drop_path=..., **options)``."""


def register_family(table: dict[str, Any], build: Callable[..., nn.Module]) -> None:
    """Register every entry of ``table`` (name -> frozen config dataclass) as a model built by
    ``build(config, num_classes=...)``; a name registered twice is a programming error."""
    for name, config in table.items():
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"model {name!r}: the variant table holds {type(config).__name__}, not a config dataclass")
        MODELS.register(name, VariantBuilder(name, config, build))


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return MODELS.names()


def _builder(name: str) -> Callable[..., nn.Module]:
    return MODELS.lookup(name)


def model_config(name: str, **options: Any) -> Any:
    """The config of table variant ``name`` with ``options`` replacing its fields."""
    return _builder(name).resolve(**options)  # type: ignore[attr-defined]


def create_model(
    name: str, num_classes: int = 400, *, dropout: float | None = None, drop_path: float | None = None,
    **options: Any,
) -> nn.Module:
    """Build a registered model; ``dropout`` / ``drop_path`` (None: the variant's) and ``options``
    replace fields of its config (:meth:`VariantBuilder.resolve`)."""
    return _builder(name)(num_classes=num_classes, dropout=dropout, drop_path=drop_path, **options)


def check_ranges(config: Any, *, positive: tuple[str, ...]) -> None:
    """Range checks for a family config's ``__post_init__``: each field named in ``positive`` (each entry
    of a tuple; None passes) is > 0, and ``dropout`` and ``drop_path`` lie in [0, 1)."""
    for key in positive:
        value = getattr(config, key)
        if value is not None and not all(v > 0 for v in (value if isinstance(value, tuple) else (value,))):
            raise ModelError(f"{key} {value!r}: expected {'values' if isinstance(value, tuple) else 'a value'} > 0",
                             option=key)
    for key in ("dropout", "drop_path"):
        if not 0 <= getattr(config, key) < 1:
            raise ModelError(f"{key} {getattr(config, key)!r}: expected a rate in [0, 1)", option=key)
