"""X3D's expansion factors: X2D, the six axes of the expansion, the named points, and the mobile
components of the supplement's Table A.1."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from vidgrid.errors import ModelError
from vidgrid.models import create_model
from vidgrid.models.x3d import (
    AXES,
    X3D,
    X3D_CONFIGS,
    X3D_GAMMAS,
    Gammas,
    clip_gmacs,
    crop_for,
    expand_to_cost,
    round_width,
    x3d_config,
)


def hand_counted_gmacs(g: Gammas, num_classes: int = 400) -> float:
    """X3D paper Table 1 layer by layer (multiply-adds of every conv and linear layer), for a γ set
    with γ_d = 1 (one, two, five and three blocks)."""
    assert g.d == 1
    t, size = g.t, crop_for(g.s)
    widths = [round_width(w, 2 * g.w, divisor=8) for w in (12, 24, 48, 96)]
    stem = round_width(12, 2 * g.w, divisor=8)
    side = (size + 1) // 2  # stride-2 stem
    macs = stem * 3 * 9 * side**2 * t + stem * 5 * side**2 * t  # 1×3² conv, 5×1² channel-wise conv
    dim_in = stem
    for dim_out, depth in zip(widths, (1, 2, 5, 3)):
        inner = int(g.b * dim_out)
        for i in range(depth):
            if i == 0:
                macs += dim_in * inner * side**2 * t  # conv_a at the input resolution
                side = (side + 1) // 2
                macs += dim_in * dim_out * side**2 * t  # strided shortcut projection
            else:
                macs += dim_out * inner * side**2 * t
            macs += inner * 27 * side**2 * t + inner * dim_out * side**2 * t  # channel-wise 3×3², conv_c
            if i % 2 == 0:
                macs += 2 * inner * round_width(inner, 1 / 16, divisor=8, min_width=8)  # SE on the pooled map
        dim_in = dim_out
    inner = int(g.b * widths[-1])
    macs += widths[-1] * inner * side**2 * t  # conv5
    macs += inner * 2048 + 2048 * num_classes  # lin5, classifier
    return macs / 1e9


def test_x2d_is_every_gamma_one_with_one_frame() -> None:
    g = X3D_GAMMAS["x2d"]
    assert (g.t, g.s, g.w, g.b, g.d) == (1, 1, 1, 1, 1)
    model = create_model("x2d")
    assert model.default_input == (3, 1, 112, 112)
    assert [block.conv_b.in_channels for block in model.res2] == [24]  # γ_b = 1: inner = output width


def test_x2d_flops_match_a_hand_count_of_table_1() -> None:
    measured = clip_gmacs(X3D_CONFIGS["x2d"])
    assert measured == pytest.approx(hand_counted_gmacs(X3D_GAMMAS["x2d"]), rel=1e-9)
    assert measured == pytest.approx(0.02066, abs=1e-5)
    wider = Gammas(tau=4, t=3, s=math.sqrt(2), w=1.5, b=2.25, d=1)  # the count holds off X2D too
    assert clip_gmacs(x3d_config(wider)) == pytest.approx(hand_counted_gmacs(wider), rel=1e-9)


def test_named_points_are_the_published_instances() -> None:
    expected = {  # (frames, crop, τ, width factor, depth factor)
        "x3d_xs": (4, 160, 12, 2.0, 2.2), "x3d_s": (13, 160, 6, 2.0, 2.2), "x3d_m": (16, 224, 5, 2.0, 2.2),
        "x3d_l": (16, 312, 5, 2.0, 5.0), "x3d_xl": (16, 312, 5, 2.9, 5.0),
    }
    for name, (frames, crop, tau, width, depth) in expected.items():
        cfg = X3D_CONFIGS[name]
        assert (cfg.frames, cfg.crop, cfg.sampling_rate, cfg.width_factor, cfg.depth_factor) == (frames, crop, tau, width, depth)
        assert cfg.bottleneck_factor == 2.25 and cfg == x3d_config(X3D_GAMMAS[name])


STARTS = {
    "x2d": replace(X3D_GAMMAS["x2d"], tau=32),  # the search's γ_τ of one frame: the recipe's clip span
    "x2d_grown": Gammas(tau=8, t=4, s=0.7, w=0.75, b=2.0, d=2.2),
    "x3d_xs": X3D_GAMMAS["x3d_xs"],
}


@pytest.mark.parametrize("start", [s if s == "x2d" else pytest.param(s, marks=pytest.mark.slow) for s in STARTS])
@pytest.mark.parametrize("axis", list(AXES))
def test_each_axis_doubles_the_flops(start: str, axis: str) -> None:
    g = STARTS[start]
    base = clip_gmacs(x3d_config(g))
    grown, gmacs = expand_to_cost(g, axis, 2 * base)
    assert gmacs == pytest.approx(clip_gmacs(x3d_config(grown)))
    assert 1.7 <= gmacs / base <= 2.3  # ±15% of ĉ = 2
    changed = {k for k in ("tau", "t", "s", "w", "b", "d") if getattr(grown, k) != getattr(g, k)}
    assert changed == {"fast": {"tau", "t"}, "temporal": {"tau", "t"}, "spatial": {"s"}, "depth": {"d"},
                       "width": {"w"}, "bottleneck": {"b"}}[axis]


def test_fast_keeps_the_duration_and_temporal_stretches_it() -> None:
    g = Gammas(tau=8, t=4, s=1, w=1, b=1, d=1)
    fast, temporal = AXES["fast"].grow(g, 2.0), AXES["temporal"].grow(g, 2.0)
    assert (fast.t, fast.tau) == (8, 4.0) and fast.t * fast.tau == g.t * g.tau
    assert (temporal.t, temporal.tau) == (8, 6.0) and temporal.t * temporal.tau == 1.5 * g.t * g.tau
    at_one = replace(g, tau=1)  # a stride of one source frame cannot shrink: more frames, longer clips
    assert AXES["fast"].grow(at_one, 2.0).tau == 1 and AXES["temporal"].grow(at_one, 2.0).tau == 1


def test_the_cost_target_moves_the_factor() -> None:
    g = X3D_GAMMAS["x2d"]
    base = clip_gmacs(x3d_config(g))
    assert expand_to_cost(g, "bottleneck", 3 * base)[0].b > expand_to_cost(g, "bottleneck", 2 * base)[0].b
    grown, gmacs = expand_to_cost(g, "spatial", 2 * base)
    assert grown.s != pytest.approx(math.sqrt(2)) or abs(gmacs / base - 2) < 0.1  # adjusted, not the nominal √2


def test_bad_gammas_are_one_line_errors() -> None:
    with pytest.raises(ModelError, match="γ w = 0: expected a value > 0"):
        Gammas(tau=1, t=1, s=1, w=0, b=1, d=1)


def params(cfg) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in X3D(cfg).parameters())


def test_table_a1_mobile_components_of_x3d_s() -> None:
    s = X3D_CONFIGS["x3d_s"]
    # − SE: 3.63M (published 3.60M), FLOPs unchanged
    assert round(params(replace(s, se=False)) / 1e6, 2) == 3.63
    with torch.device("meta"):
        no_se, no_swish = X3D(replace(s, se=False)), X3D(replace(s, swish=False))
    assert not any(isinstance(m, nn.Sigmoid) or type(m).__name__ == "SqueezeExcitation" for m in no_se.modules())
    # − swish: ReLU everywhere, same size and cost
    assert not any(isinstance(m, nn.SiLU) for m in no_swish.modules())
    assert params(replace(s, swish=False)) == 3_794_274
    # − CW conv at γ_b 2.25: a full 1×3² conv, 20.6M / 15.9 GMACs (published 22.1M / 17.6)
    full = replace(s, conv_b="full")
    assert round(params(full) / 1e6, 1) == 20.6 and round(clip_gmacs(full), 1) == 15.9
    # − CW conv with γ_b lowered to keep the FLOPs (published γ_b 0.6, 1.95 GFLOPs, 3.16M)
    with torch.device("meta"):
        matched = X3D(replace(s, conv_b="full_same_flops"))
    assert matched.cfg.conv_b == "full" and matched.cfg.bottleneck_factor < 1
    assert clip_gmacs(matched.cfg) == pytest.approx(clip_gmacs(s), rel=0.03)
    assert matched.res2[0].conv_b.groups == 1 and matched.res2[0].conv_b.kernel_size == (1, 3, 3)


def test_switches_are_model_options() -> None:
    model = create_model("x2d", num_classes=5, se=False, swish=False, conv_b="full")
    assert model.cfg.se is False and model(torch.randn(2, 3, 1, 32, 32)).shape == (2, 5)
    with pytest.raises(ModelError, match="conv_b"):
        create_model("x2d", conv_b="dense")
