"""Shared helpers for the model tests: tiny size overrides per family, meta-device counting."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vidgrid.models import create_model

# Tiny widths/depths per family (builder overrides), so every registered model trains in well under
# a second on CPU. Keys are name prefixes, longest first.
TINY: dict[str, dict[str, object]] = {
    "slowfast_": {"width": 16, "stage_depths": (1, 1, 1, 1)},
    "x3d_": {"width_factor": 0.5, "depth_factor": 0.2},
    "x2d": {},
    "c2d_": {"width": 8, "stage_depths": (1, 1, 1, 1)},
    "i3d_": {"width": 8, "stage_depths": (1, 2, 2, 1)},
    "slow_": {"width": 8, "stage_depths": (1, 1, 1, 1)},
    "mvit": {"embed_dim": 8, "depths": (1, 1, 1, 1)},
}


def _tiny_overrides(name: str) -> dict[str, object]:
    for prefix, overrides in TINY.items():
        if name.startswith(prefix):
            return dict(overrides)
    raise KeyError(f"no tiny overrides for model {name!r}: add its family to tests/models/conftest.py")


def _tiny_model(name: str, num_classes: int = 5, **kwargs: object) -> nn.Module:
    return create_model(name, num_classes=num_classes, **_tiny_overrides(name), **kwargs)


def _meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _gmacs(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    model.eval()
    x = torch.empty(1, *input_shape, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2e9


@pytest.fixture
def tiny_model():
    """Factory: ``tiny_model(name, num_classes=5, **overrides)`` builds a tiny version of a model."""
    return _tiny_model


@pytest.fixture
def meta_model():
    """Factory: the full-size model on the meta device (no memory, no init cost)."""
    return _meta_model


@pytest.fixture
def gmacs():
    """``gmacs(model, (C, T, H, W))``: multiply-adds of one eval-mode clip in 1e9 (FlopCounterMode / 2)."""
    return _gmacs


def _assert_params(model: torch.nn.Module, reference: int | float) -> None:
    """An exact count (int), or the published count in millions to its two shown decimals (float)."""
    count = sum(p.numel() for p in model.parameters())
    if isinstance(reference, int):
        assert count == reference
    else:
        assert round(count / 1e6, 2) == reference / 1e6


@pytest.fixture
def assert_params():
    """``assert_params(model, reference)``: the parameter count equals the reference table's."""
    return _assert_params


@pytest.fixture(autouse=True)
def _seed():
    """Seeded (the suite-wide fixture in ``tests/conftest.py`` already runs torch on one thread)."""
    torch.manual_seed(0)
