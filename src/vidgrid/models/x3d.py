"""X3D: Expanding Architectures for Efficient Video Recognition (Feichtenhofer, CVPR 2020).

A ResNet of channel-wise separable bottlenecks grown from a tiny 2-D base network along the
expansion axes γ_w (global width), γ_b (bottleneck width), γ_d (depth), γ_t and γ_s (input frames
and crop). Following the supplement (§A.3): 3×3² channel-wise separable convolutions, SE with
ratio 1/16 after them in every other block, swish only around that layer and ReLU elsewhere,
then conv5 (1×1×1, BN, ReLU), global pooling, a 2048-d ``lin5`` with ReLU, dropout 0.5 and the
classifier. No temporal striding anywhere, so any clip length works.

Expansion factors (X3D paper §3, supplement "Expansion details"): :class:`Gammas` holds γ_τ, γ_t, γ_s,
γ_w, γ_b, γ_d; :func:`x3d_config` turns them into a network. X2D is every γ = 1 with one frame, and
the published X3D-XS…XL are named points of :data:`X3D_GAMMAS`. The mobile components can be
switched off as in the supplement's Table A.1 (``conv_b``, ``swish``, ``se``).

Layer names follow PySlowFast's shapes one to one so that ``vidgrid.models.convert`` maps its and
PyTorchVideo's checkpoints by a key table.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from vidgrid.errors import ModelError
from vidgrid.models.layers import (
    Bottleneck,
    ClassifierHead,
    VideoModel,
    bn3d,
    drop_path_rates,
    init_weights,
)
from vidgrid.models.profile import count_gmacs
from vidgrid.models.registry import check_ranges, register_family

_BASE_DEPTHS = (1, 2, 5, 3)
"""Blocks of res2..res5 in the X2D base network (X3D paper Table 1), before γ_d."""
_SE_RATIO = 1 / 16
BASE_CROP = 112
"""X2D's input crop: crop = 112 · γ_s."""
BASE_WIDTH_FACTOR = 2.0
"""``width_factor`` of γ_w = 1: X2D's stem and stage widths are 24 and 24/48/96/192 (X3D paper Table 1),
PySlowFast's base widths 12/24/48/96 times 2."""
FULL_CONV_KERNEL = (1, 3, 3)
"""Kernel of the full (not channel-wise) conv_b of Table A.1's "− CW conv" rows: a 1×3² conv gives
X3D-S 20.6M params / 15.9 GMACs against the published 22.1M / 17.6, a 3×3² one 54.6M / 44.3, so the
ablation kept only the spatial kernel (as a ResNet bottleneck's conv_b)."""
ConvB = Literal["channelwise", "full", "full_same_flops"]


@dataclass(frozen=True)
class X3DConfig:
    """One X3D instance: expansion factors and the input it was expanded for."""

    width_factor: float
    """Global width multiplier of the base widths (stem 12, stages 12/24/48/96): 2 · γ_w."""
    depth_factor: float
    """γ_d: depth multiplier of the base block counts (1, 2, 5, 3), rounded up."""
    frames: int
    """γ_t: input clip length."""
    crop: int
    """γ_s · 112: input crop size."""
    sampling_rate: int
    """γ_τ: temporal stride of the input in source frames."""
    bottleneck_factor: float = 2.25
    """γ_b: inner (channel-wise conv) width relative to each stage's output width."""
    dim_c1: int = 12
    """Stem width before γ_w."""
    dim_c5: int = 2048
    """Width of the ``lin5`` layer in the head."""
    dropout: float = 0.5
    """Dropout before the classifier."""
    drop_path: float = 0.0
    """Stochastic depth rate of the last block (rising linearly from 0)."""
    conv_b: ConvB = "channelwise"
    """The bottleneck's middle conv (supplement Table A.1): X3D's channel-wise 3×3², a full conv of
    :data:`FULL_CONV_KERNEL` at the same γ_b ("− CW conv"), or a full conv with γ_b lowered until the
    FLOPs match the channel-wise network ("− CW conv, γ_b = 0.6")."""
    swish: bool = True
    """Swish around the bottleneck's middle conv; False = ReLU there too (Table A.1 "− swish")."""
    se: bool = True
    """Squeeze-excitation in every other block; False = none (Table A.1 "− SE")."""

    def __post_init__(self) -> None:
        check_ranges(self, positive=("width_factor", "depth_factor", "frames", "crop", "sampling_rate",
                                     "bottleneck_factor", "dim_c1", "dim_c5"))


@dataclass(frozen=True)
class Gammas:
    """X3D's expansion factors (X3D paper §3.2; X2D = all 1 with one frame)."""

    tau: float
    """γ_τ: temporal sampling stride in source frames (rounded to an integer >= 1 for the data)."""
    t: int
    """γ_t: frames of the input clip."""
    s: float
    """γ_s: spatial resolution, crop = 112 · γ_s (rounded to a multiple of 8)."""
    w: float
    """γ_w: global width (1 = X2D's 24/48/96/192)."""
    b: float
    """γ_b: bottleneck (inner) width relative to each stage's output width."""
    d: float
    """γ_d: depth relative to X2D's 1/2/5/3 blocks (rounded up per stage)."""

    def __post_init__(self) -> None:
        bad = [k for k, v in asdict(self).items() if not v > 0]
        if bad:
            raise ModelError(f"γ {bad[0]} = {getattr(self, bad[0])!r}: expected a value > 0", option=bad[0])

    def as_dict(self) -> dict[str, float]:
        """The factors as plain numbers (``trace.json``'s ``gammas``), floats rounded to 4 digits."""
        return {k: v if isinstance(v, int) else round(v, 4) for k, v in asdict(self).items()}


def crop_for(s: float) -> int:
    """The input crop of γ_s: 112 · γ_s rounded (half up) to a multiple of 8, at least 8."""
    return max(8, int(BASE_CROP * s / 8 + 0.5) * 8)


def x3d_config(g: Gammas, **fields: object) -> X3DConfig:
    """The X3D instance of a γ set; ``fields`` replace further config fields (``conv_b``, ``se``...)."""
    return X3DConfig(
        width_factor=BASE_WIDTH_FACTOR * g.w, depth_factor=g.d, bottleneck_factor=g.b, frames=g.t,
        crop=crop_for(g.s), sampling_rate=max(1, round(g.tau)), **fields,  # type: ignore[arg-type]
    )


X3D_GAMMAS: dict[str, Gammas] = {
    # X2D: the 2-D base network of Table 1 (γ_τ is undefined for one frame; the search sets it)
    "x2d": Gammas(tau=1, t=1, s=1, w=1, b=1, d=1),
    "x3d_xs": Gammas(tau=12, t=4, s=math.sqrt(2), w=1, b=2.25, d=2.2),
    "x3d_s": Gammas(tau=6, t=13, s=math.sqrt(2), w=1, b=2.25, d=2.2),
    "x3d_m": Gammas(tau=5, t=16, s=2, w=1, b=2.25, d=2.2),
    "x3d_l": Gammas(tau=5, t=16, s=312 / BASE_CROP, w=1, b=2.25, d=5),
    # γ_w 1.45: PySlowFast's width factor 2.9 (widths 32/72/136/280)
    "x3d_xl": Gammas(tau=5, t=16, s=312 / BASE_CROP, w=1.45, b=2.25, d=5),
}
"""Named points of the expansion: X2D and the published X3D-XS…XL."""

X3D_CONFIGS: dict[str, X3DConfig] = {name: x3d_config(g) for name, g in X3D_GAMMAS.items()}
"""The registered variants: X2D (1×112²), X3D-XS (4×160²), S (13×160²), M (16×224²), L and XL (16×312²)."""


@dataclass(frozen=True)
class Axis:
    """One expansion axis (supplement "Expansion details"): ``grow(γ, m)`` expands by a factor ``m``
    whose nominal value (``nominal``) roughly doubles the cost; the search adjusts ``m``. γ_τ never
    falls below one source frame: at 1, X-Fast and X-Temporal add frames and duration."""

    nominal: float
    grow: Callable[[Gammas, float], Gammas]


def _more_frames(g: Gammas, m: float) -> int:
    return max(g.t + 1, round(m * g.t))


AXES: dict[str, Axis] = {
    # X-Fast: the same duration at a higher frame rate (γ_τ ← γ_τ/2, γ_t ← 2γ_t)
    "fast": Axis(2.0, lambda g, m: replace(g, t=_more_frames(g, m), tau=max(1.0, g.tau * g.t / _more_frames(g, m)))),
    # X-Temporal: 4/3 the frame rate, longer duration (γ_τ ← 0.75γ_τ, γ_t ← 2γ_t)
    "temporal": Axis(2.0, lambda g, m: replace(g, t=_more_frames(g, m), tau=max(1.0, 0.75 * g.tau))),
    "spatial": Axis(math.sqrt(2), lambda g, m: replace(g, s=m * g.s)),  # γ_s ← √2 γ_s
    "depth": Axis(2.2, lambda g, m: replace(g, d=m * g.d)),  # γ_d ← 2.2 γ_d
    "width": Axis(2.0, lambda g, m: replace(g, w=m * g.w)),  # γ_w ← 2 γ_w
    "bottleneck": Axis(2.25, lambda g, m: replace(g, b=m * g.b)),  # γ_b ← 2.25 γ_b
}
"""The six axes of X3D's expansion, in the paper's order."""


def expand_to_cost(
    g: Gammas, axis: str, target: float, *, num_classes: int = 400, **fields: object
) -> tuple[Gammas, float]:
    """Expand ``g`` along ``axis`` by the factor whose measured GMACs come closest to ``target``
    (``ĉ`` × the current cost; supplement footnote 1: "the exact expansion factors slightly vary
    across steps to match the complexity increase"); returns the expanded γ and its GMACs.

    The cost rises with the factor, so bisection over [1, 1.5 × nominal] (widened until it holds the
    target) finds the two networks around the target; the one nearer in log-cost wins (ties: the
    smaller). ``fields``: further config fields (``conv_b``, ``se``...)."""
    grow = AXES[axis].grow

    def cost(m: float) -> float:
        return clip_gmacs(x3d_config(grow(g, m), **fields), num_classes=num_classes)

    lo, hi = 1.0, 1.5 * AXES[axis].nominal
    while cost(hi) < target:
        lo, hi = hi, 2 * hi
    for _ in range(16):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if cost(mid) < target else (lo, mid)
    best = min((hi, lo) if lo > 1.0 else (hi,), key=lambda m: (abs(math.log(cost(m) / target)), m))
    return grow(g, best), cost(best)


def round_width(width: float, multiplier: float, *, divisor: int = 1, min_width: int = 1) -> int:
    """Scale a width and round it to a multiple of ``divisor``, never below ``min_width`` and never
    more than 10% under the exact value (the rounding X3D's expansion uses)."""
    scaled = width * multiplier
    out = max(min_width, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:
        out += divisor
    return int(out)


def stage_widths(cfg: X3DConfig) -> tuple[int, list[int], list[int], list[int]]:
    """(stem width, per-stage output widths, per-stage inner widths, per-stage block counts).

    Widths are multiples of 8 after γ_w: X3D-XL's γ_w = 2.9 gives 32/72/136/280, which is what its
    published 11.0M parameters / 35.84 GMACs (supplement Table A.1) correspond to."""
    base = [cfg.dim_c1]
    for _ in range(3):
        base.append(round_width(base[-1], 2.0, divisor=8))  # 12, 24, 48, 96
    outs = [round_width(w, cfg.width_factor, divisor=8) for w in base]
    inners = [int(cfg.bottleneck_factor * w) for w in outs]
    depths = [int(math.ceil(cfg.depth_factor * d)) for d in _BASE_DEPTHS]
    return round_width(cfg.dim_c1, cfg.width_factor, divisor=8), outs, inners, depths


class X3DStem(nn.Module):
    """conv1: a 1×3² spatial conv (stride 2) then a 5×1² channel-wise temporal conv, BN, ReLU."""

    def __init__(self, dim_in: int, dim_out: int, *, kernel_t: int = 5) -> None:
        super().__init__()
        self.conv_xy = nn.Conv3d(dim_in, dim_out, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.conv_t = nn.Conv3d(
            dim_out, dim_out, (kernel_t, 1, 1), padding=(kernel_t // 2, 0, 0), groups=dim_out, bias=False
        )
        self.bn = bn3d(dim_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv_t(self.conv_xy(x))))


class X3DHead(ClassifierHead):
    """Global average pooling → ``lin5`` (1×1×1 conv, no BN) → ReLU → dropout → classifier.

    The conv5 layer before the pooling belongs to the backbone (it runs at full resolution)."""

    def __init__(self, dim_in: int, dim_hidden: int, num_classes: int, *, dropout: float) -> None:
        super().__init__(dim_hidden, num_classes, dropout=dropout)
        self.lin5 = nn.Conv3d(dim_in, dim_hidden, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def pool(self, features: Tensor) -> Tensor:
        z = features.mean(dim=(2, 3, 4), keepdim=True)  # (B, C, T, H, W) -> (B, C, 1, 1, 1)
        return self.relu(self.lin5(z)).flatten(1)  # -> (B, dim_hidden)


class X3D(VideoModel):
    """X3D network: stem, res2..res5 of separable bottlenecks (spatial stride 2 each), conv5, head."""

    def __init__(self, cfg: X3DConfig, *, num_classes: int = 400) -> None:
        super().__init__()
        if cfg.conv_b == "full_same_flops":
            cfg = same_flops_full_conv(cfg)
        self.cfg = cfg
        self.default_input = (3, cfg.frames, cfg.crop, cfg.crop)
        self.default_sampling_rate = cfg.sampling_rate
        dim_stem, outs, inners, depths = stage_widths(cfg)
        self.feature_channels = (inners[-1],)
        rates = iter(drop_path_rates(cfg.drop_path, sum(depths)))

        self.stem = X3DStem(3, dim_stem)
        dim_in = dim_stem
        channelwise = cfg.conv_b == "channelwise"
        for stage, (dim_out, dim_inner, depth) in enumerate(zip(outs, inners, depths)):
            blocks = [
                Bottleneck(
                    dim_in if i == 0 else dim_out, dim_inner, dim_out,
                    kernel_a=(1, 1, 1), kernel_b=(3, 3, 3) if channelwise else FULL_CONV_KERNEL,
                    stride=2 if i == 0 else 1, groups_b=dim_inner if channelwise else 1,
                    se_hidden=round_width(dim_inner, _SE_RATIO, divisor=8, min_width=8) if cfg.se and i % 2 == 0 else 0,
                    act_b="swish" if cfg.swish else "relu", drop_path=next(rates),
                )
                for i in range(depth)
            ]
            self.add_module(f"res{stage + 2}", nn.Sequential(*blocks))
            dim_in = dim_out
        self.conv5 = nn.Conv3d(dim_in, inners[-1], 1, bias=False)
        self.conv5_bn = bn3d(inners[-1])
        self.conv5_relu = nn.ReLU(inplace=True)
        self.head = X3DHead(inners[-1], cfg.dim_c5, num_classes, dropout=cfg.dropout)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # (B, 3, T, H, W) -> (B, C1, T, H/2, W/2)
        x = self.res5(self.res4(self.res3(self.res2(x))))  # -> (B, C5, T, H/32, W/32)
        return self.conv5_relu(self.conv5_bn(self.conv5(x)))


@functools.lru_cache(maxsize=256)
def clip_gmacs(cfg: X3DConfig, *, num_classes: int = 400) -> float:
    """Multiply-adds (billions) of one ``frames × crop²`` clip through the network of ``cfg``, counted
    by ``torch.utils.flop_counter`` on the meta device (nothing is computed); remembered per network,
    as the expansion search measures each candidate while bisecting and again when training it."""
    with torch.device("meta"):
        model = X3D(cfg, num_classes=num_classes)
    return count_gmacs(model, model.default_input)


@functools.lru_cache(maxsize=64)
def same_flops_full_conv(cfg: X3DConfig) -> X3DConfig:
    """``cfg`` with a full conv_b and γ_b lowered (in steps of 0.01) to the value whose FLOPs are
    closest to the channel-wise network's (supplement Table A.1, "− CW conv, γ_b = 0.6" for X3D-S)."""
    target = clip_gmacs(replace(cfg, conv_b="channelwise"))
    full = replace(cfg, conv_b="full")
    lo, hi = 1, max(1, round(100 * cfg.bottleneck_factor))  # γ_b in hundredths; FLOPs rise with γ_b
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if clip_gmacs(replace(full, bottleneck_factor=mid / 100)) < target else (lo, mid)
    candidates = [replace(full, bottleneck_factor=v / 100) for v in {lo, hi}]
    return min(candidates, key=lambda c: abs(clip_gmacs(c) - target))


register_family(X3D_CONFIGS, X3D)
