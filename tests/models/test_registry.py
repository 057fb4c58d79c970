"""Every registered model: one face, shape-agnostic (multigrid), trainable, reloadable."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vidgrid.errors import ModelError
from vidgrid.models import create_model, list_models
from vidgrid.models.layers import VideoModel

MODELS = list_models()


def _frames(model: VideoModel, at_least: int) -> int:
    """The smallest valid clip length >= ``at_least`` for the model."""
    t = max(at_least, model.min_frames)
    return math.ceil(t / model.frames_multiple) * model.frames_multiple


def test_registry_lists_every_family() -> None:
    for expected in ("x3d_xs", "x3d_s", "x3d_m", "x3d_l", "x3d_xl", "c2d_r50_8x8", "i3d_r50_8x8",
                     "i3d_nl_r50_8x8", "slow_r50_8x8", "slowfast_r50_4x16", "slowfast_r50_8x8", "slowfast_r101_8x8"):
        assert expected in MODELS
    with pytest.raises(ModelError, match="unknown model 'x3d_q'"):
        create_model("x3d_q")


@pytest.mark.parametrize("name", MODELS)
def test_model_trains_on_every_shape_and_reloads(name: str, tmp_path, tiny_model) -> None:
    model = tiny_model(name, num_classes=5)
    assert isinstance(model, VideoModel)
    assert isinstance(model.head, nn.Module) and len(model.default_input) == 4
    assert all(isinstance(v, int) and v >= 1 for v in (model.min_frames, model.frames_multiple, model.crop_multiple))

    # forward + backward on two shapes with the same weights (train mode)
    model.train()
    for t, crop, batch in ((_frames(model, 4), 64, 2), (_frames(model, 8), 96, 1)):
        model.zero_grad(set_to_none=True)
        logits = model(torch.randn(batch, 3, t, crop, crop))
        assert logits.shape == (batch, 5)
        logits.logsumexp(dim=1).mean().backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), "a parameter got no gradient"

    # multigrid shapes: frames T/4, T/2 and crops S/2, S/√2 of a 64² base (eval, no grad)
    model.eval()
    with torch.no_grad():
        for t, crop in ((_frames(model, 2), 32), (_frames(model, 3), 45)):
            assert model(torch.randn(1, 3, t, crop, crop)).shape == (1, 5)

    # a saved model reloads to identical outputs
    x = torch.randn(2, 3, _frames(model, 4), 48, 48)
    with torch.no_grad():
        expected = model(x)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    torch.manual_seed(1)
    again = tiny_model(name, num_classes=5).eval()
    again.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(again(x), expected)


@pytest.mark.parametrize("name", MODELS)
def test_head_reset_and_no_weight_decay(name: str, tiny_model) -> None:
    model = tiny_model(name, num_classes=5).eval()
    x = torch.randn(1, 3, _frames(model, 4), 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (1, model.head.in_features)
        model.reset_classifier(3)
        assert model(x).shape == (1, 3)
        model.reset_classifier(0)
        assert model(x).shape == (1, model.head.in_features)

    names = dict(model.named_parameters())
    no_wd = model.no_weight_decay()
    assert no_wd and no_wd <= set(names), "no_weight_decay must name real parameters"
    norms = {f"{m}.{p}" for m, mod in model.named_modules()
             if isinstance(mod, (nn.BatchNorm3d, nn.LayerNorm)) for p, _ in mod.named_parameters(recurse=False)}
    assert norms <= no_wd, "every normalisation weight and bias is decay-free"
    assert not any(names[n].dim() > 1 and "pos" not in n and "cls" not in n for n in no_wd), \
        "conv/linear weights must be decayed"
    assert all(n.startswith("head.") for n, _ in model.head.named_parameters(prefix="head"))


@pytest.mark.parametrize("name", MODELS)
def test_builders_accept_dropout_and_drop_path(name: str, tiny_model) -> None:
    model = tiny_model(name, dropout=0.0, drop_path=0.2)
    assert model.head.dropout.p == 0.0
    rates = [m.p for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.2)


@pytest.mark.parametrize("name", MODELS)
def test_feature_channels_match_forward_features(name: str, tiny_model) -> None:
    """``feature_channels`` declares what ``forward_features`` returns: dim 1 of each (B, C, T, H, W) map,
    the last dim of (B, N, C) tokens."""
    model = tiny_model(name).eval()
    x = torch.randn(2, 3, _frames(model, 4), 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
    outputs = [features] if isinstance(features, torch.Tensor) else list(features)
    channels = tuple(f.shape[1] if f.dim() == 5 else f.shape[-1] for f in outputs)
    assert all(f.dim() in (3, 5) and f.shape[0] == 2 for f in outputs)
    assert isinstance(model.feature_channels, tuple) and model.feature_channels == channels
