"""X3D: sizes and costs of the published variants, and the supplement's block design (§A.3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidgrid.models.layers import Bottleneck, DropPath, SqueezeExcitation
from vidgrid.models.x3d import X3D_CONFIGS, round_width, stage_widths

# name: (exact parameter count with 400 classes, or the reference table's rounding), GMACs at the default input
REFERENCE = {
    "x3d_xs": (3_794_274, 0.60),
    "x3d_s": (3_794_274, 1.96),
    "x3d_m": (3_794_274, 4.73),
    "x3d_l": (6.15e6, 18.37),
    "x3d_xl": (11.10e6, 35.84),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameters_and_gmacs_match_the_reference(name: str, meta_model, gmacs, assert_params) -> None:
    params, ref_gmacs = REFERENCE[name]
    model = meta_model(name)
    assert_params(model, params)
    cfg = X3D_CONFIGS[name]
    assert model.default_input == (3, cfg.frames, cfg.crop, cfg.crop)
    assert gmacs(model, model.default_input) == pytest.approx(ref_gmacs, rel=0.03)


def test_head_split_matches_the_reference_note(meta_model) -> None:
    """Head (conv5 + BN, lin5, fc) holds 1.79M of X3D-S's 3.79M; the backbone with conv5 is 2.09M."""
    model = meta_model("x3d_s")
    head = sum(p.numel() for p in model.head.parameters())
    conv5 = sum(p.numel() for n, p in model.named_parameters() if n.startswith("conv5"))
    assert round((head + conv5) / 1e6, 2) == 1.79
    assert round((sum(p.numel() for p in model.parameters()) - head) / 1e6, 2) == 2.09


def test_expansion_widths_and_depths() -> None:
    assert round_width(12, 2.9, divisor=8) == 32 and round_width(54, 1 / 16, divisor=8, min_width=8) == 8
    stem, outs, inners, depths = stage_widths(X3D_CONFIGS["x3d_s"])
    assert (stem, outs, inners, depths) == (24, [24, 48, 96, 192], [54, 108, 216, 432], [3, 5, 11, 7])
    assert stage_widths(X3D_CONFIGS["x3d_l"])[3] == [5, 10, 25, 15]
    assert stage_widths(X3D_CONFIGS["x3d_xl"])[1] == [32, 72, 136, 280]


def test_block_design_follows_the_supplement(meta_model) -> None:
    model = meta_model("x3d_s")
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 3 + 5 + 11 + 7
    for stage in ("res2", "res3", "res4", "res5"):
        for i, block in enumerate(getattr(model, stage)):
            # channel-wise separable 3×3² conv
            assert block.conv_b.kernel_size == (3, 3, 3) and block.conv_b.groups == block.conv_b.in_channels
            assert block.conv_a.kernel_size == (1, 1, 1)
            # SE (ratio 1/16, rounded to 8) in every other block, swish only around the separable conv
            assert isinstance(block.se, SqueezeExcitation) == (i % 2 == 0)
            assert isinstance(block.act_b, nn.SiLU) and isinstance(block.relu, nn.ReLU)
    acts = {type(m) for m in model.modules() if isinstance(m, (nn.SiLU, nn.ReLU))}
    assert acts == {nn.SiLU, nn.ReLU}
    assert sum(isinstance(m, nn.SiLU) for m in model.modules()) == len(blocks)
    assert model.head.dropout.p == 0.5 and model.head.lin5.out_channels == 2048
    assert model.res5[0].se.fc1.out_channels == 32  # round(432/16 = 27) to a multiple of 8


def test_any_clip_length_and_features_keep_time(tiny_model) -> None:
    model = tiny_model("x3d_s").eval()
    with torch.no_grad():
        for t in (1, 5, 13):
            features = model.forward_features(torch.randn(1, 3, t, 64, 64))
            assert features.shape[2:] == (t, 2, 2)  # no temporal stride, spatial /32
        assert model.forward_head(features, pre_logits=True).shape == (1, 2048)


def test_he_init_and_zero_initialised_last_bn(tiny_model) -> None:
    model = tiny_model("x3d_m")
    block = model.res3[0]
    assert torch.count_nonzero(block.bn_c.weight) == 0  # residual branches start as identity
    fan_out = block.conv_a.out_channels  # 1×1×1 kernel
    assert block.conv_a.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.3)
    assert model.head.fc.weight.std().item() == pytest.approx(0.01, rel=0.3)


def test_drop_connect(tiny_model) -> None:
    model = tiny_model("x3d_s", drop_path=0.5)
    rates = [m.p for m in model.modules() if isinstance(m, DropPath)]
    assert rates[0] == 0.0 and rates[-1] == 0.5 and rates == sorted(rates)
    drop = DropPath(0.5).train()
    x = torch.ones(1000, 4)
    y = drop(x)
    assert set(y[:, 0].tolist()) == {0.0, 2.0} and y.mean().item() == pytest.approx(1.0, abs=0.15)
    assert torch.equal(drop.eval()(x), x)
