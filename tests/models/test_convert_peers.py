"""Conversion against the peers' real code: golden fixtures written by ``tools/make_peer_fixtures.py``
from PyTorchVideo's builders and PySlowFast's model classes (tiny widths, random weights and norm
statistics, float64 logits on a fixed clip). Each converted model must give the peer's logits to 1e-6
(relative to their size); PySlowFast fixtures carry the config its checkpoints save, whose settings
(the non-local form) conversion maps."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from torch import nn

from vidgrid.models import create_model
from vidgrid.models.convert import convert_state_dict, source_options

FIXTURES = Path(__file__).parent / "peer_fixtures"
TINY_RESNET = {"width": 4, "stage_depths": (1, 1, 1, 1)}
TINY_MVIT = {"embed_dim": 8, "depths": (1, 1, 1), "frames": 4, "crop": 32}


def _slowfast(n: int) -> nn.Module:
    return create_model("slowfast_r50_8x8", num_classes=n, dropout=0.0, beta_inv=4, **TINY_RESNET)


def _x3d(n: int, *, dim_c1: int = 12) -> nn.Module:
    return create_model(
        "x3d_xs", num_classes=n, dropout=0.0, width_factor=0.5, depth_factor=0.2, dim_c5=32, dim_c1=dim_c1, frames=4,
        crop=32,
    )


# Our counterpart of each fixture's peer model (the sizes ``tools/make_peer_fixtures.py`` builds),
# given the class count and the builder options conversion derived from the peer's saved config.
OURS: dict[str, Callable[..., nn.Module]] = {
    "pytorchvideo-slow_r50_8x8": lambda n, **kw: create_model("slow_r50_8x8", num_classes=n, **TINY_RESNET, **kw),
    "pytorchvideo-c2d_r50_8x8": lambda n, **kw: create_model("c2d_r50_8x8", num_classes=n, **TINY_RESNET, **kw),
    "pytorchvideo-i3d_r50_8x8": lambda n: create_model("i3d_r50_8x8", num_classes=n, width=4, stage_depths=(1, 2, 2, 1)),
    "pytorchvideo-slowfast_r50_8x8": _slowfast,
    "pytorchvideo-x3d_xs": lambda n: _x3d(n),
    "pytorchvideo-mvitv1_b_16x4": lambda n: create_model("mvitv1_b_16x4", num_classes=n, **TINY_MVIT),
    "pyslowfast-x3d_xs": lambda n: _x3d(n, dim_c1=16),  # widths both peers round alike (the generator says why)
    "pyslowfast-i3d_nl_r50_8x8": lambda n, **kw: create_model(
        "i3d_nl_r50_8x8", num_classes=n, width=4, stage_depths=(1, 2, 2, 1), **kw
    ),
    "pyslowfast-slowfast_r50_8x8": _slowfast,
    "pyslowfast-mvitv2_s_16x4": lambda n: create_model("mvitv2_s_16x4", num_classes=n, **TINY_MVIT),
}
OURS["pyslowfast-i3d_nl_r50_8x8-softmax"] = OURS["pyslowfast-i3d_nl_r50_8x8"]
OURS["pyslowfast-mvitv2_s_16x4-separate_qkv"] = OURS["pyslowfast-mvitv2_s_16x4"]


def unpack(fixture: dict) -> dict[str, torch.Tensor]:
    """The peer's state dict from its flat fp16 storage, in float64 (or that of the fixture it shares)."""
    if "state_of" in fixture:
        fixture = torch.load(FIXTURES / f"{fixture['state_of']}.pt", weights_only=True)
    sizes = [torch.Size(shape).numel() for shape in fixture["shapes"]]
    parts = fixture["flat"].double().split(sizes)
    return {name: part.reshape(shape) for name, part, shape in zip(fixture["names"], parts, fixture["shapes"])}


def peer_input(fixture: dict) -> torch.Tensor:
    """The fixture's input clip, regenerated from its seed as the generator drew it (fp16-exact)."""
    generator = torch.Generator().manual_seed(fixture["input_seed"])
    return torch.randn(fixture["input_shape"], generator=generator, dtype=torch.float64).half().double()


def test_every_fixture_has_a_counterpart() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.pt")) == sorted(OURS)


@pytest.mark.parametrize("name", sorted(OURS))
def test_converted_peer_model_gives_the_peers_logits(name: str) -> None:
    fixture = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    assert name.startswith(f"{fixture['peer']}-{fixture['model']}")
    options = source_options(yaml.safe_load(fixture.get("cfg", "{}")), fixture["model"])
    theirs = fixture["logits"]
    model = OURS[name](theirs.shape[1], **options).double()
    model.load_state_dict(convert_state_dict(unpack(fixture), model, fixture["peer"]))
    with torch.no_grad():
        ours = model.eval()(peer_input(fixture))
    error = float((ours - theirs).abs().max() / theirs.abs().max())
    assert error < 1e-6, f"{name}: logits differ by {error:.2e} of their size"


def test_pyslowfast_non_local_settings_are_read_from_its_saved_config() -> None:
    softmax = torch.load(FIXTURES / "pyslowfast-i3d_nl_r50_8x8-softmax.pt", weights_only=True)
    dot = torch.load(FIXTURES / "pyslowfast-i3d_nl_r50_8x8.pt", weights_only=True)
    assert source_options(yaml.safe_load(softmax["cfg"]), "i3d_nl_r50_8x8") == {"nonlocal_form": "softmax"}
    assert source_options(yaml.safe_load(dot["cfg"]), "i3d_nl_r50_8x8") == {}
