"""Conversion against the peers' real code: golden fixtures written by ``tools/make_peer_fixtures.py``
from PyTorchVideo's own builders (tiny widths, random weights and norm statistics, float64 logits on
a fixed clip). Each converted model must give the peer's logits to 1e-6 (relative to their size)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import nn

from vidgrid.models import create_model
from vidgrid.models.convert import convert_state_dict
from vidgrid.models.mvit import VARIANTS, MViT
from vidgrid.models.resnet3d import SLOWFAST_CONFIGS, SlowFast
from vidgrid.models.x3d import X3D, X3D_CONFIGS

FIXTURES = Path(__file__).parent / "peer_fixtures"
TINY_RESNET = {"width": 4, "stage_depths": (1, 1, 1, 1)}

# Our counterpart of each fixture's peer model (the sizes ``tools/make_peer_fixtures.py`` builds).
OURS: dict[str, Callable[[int], nn.Module]] = {
    "slow_r50_8x8": lambda n: create_model("slow_r50_8x8", num_classes=n, **TINY_RESNET),
    "c2d_r50_8x8": lambda n: create_model("c2d_r50_8x8", num_classes=n, **TINY_RESNET),
    "i3d_r50_8x8": lambda n: create_model("i3d_r50_8x8", num_classes=n, width=4, stage_depths=(1, 2, 2, 1)),
    "slowfast_r50_8x8": lambda n: SlowFast(
        replace(SLOWFAST_CONFIGS["slowfast_r50_8x8"], beta_inv=4), num_classes=n, dropout=0.0, drop_path=0.0,
        **TINY_RESNET,
    ),
    "x3d_xs": lambda n: X3D(
        replace(X3D_CONFIGS["x3d_xs"], width_factor=0.5, depth_factor=0.2, dim_c5=32, frames=4, crop=32),
        num_classes=n, dropout=0.0, drop_path=0.0,
    ),
    "mvitv1_b_16x4": lambda n: MViT(
        replace(VARIANTS["mvitv1_b_16x4"], embed_dim=8, depths=(1, 1, 1, 1), frames=4, crop=32), num_classes=n
    ),
}


def unpack(fixture: dict) -> dict[str, torch.Tensor]:
    """The peer's state dict from its flat fp16 storage, in float64."""
    sizes = [torch.Size(shape).numel() for shape in fixture["shapes"]]
    parts = fixture["flat"].double().split(sizes)
    return {name: part.reshape(shape) for name, part, shape in zip(fixture["names"], parts, fixture["shapes"])}


def test_every_fixture_has_a_counterpart() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.pt")) == sorted(OURS)


@pytest.mark.parametrize("name", sorted(OURS))
def test_converted_peer_model_gives_the_peers_logits(name: str) -> None:
    fixture = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    assert fixture["model"] == name and fixture["peer"] == "pytorchvideo"
    theirs = fixture["logits"]
    model = OURS[name](theirs.shape[1]).double()
    model.load_state_dict(convert_state_dict(unpack(fixture), model, "pytorchvideo"))
    with torch.no_grad():
        ours = model.eval()(fixture["input"].double())
    error = float((ours - theirs).abs().max() / theirs.abs().max())
    assert error < 1e-6, f"{name}: logits differ by {error:.2e} of their size"
