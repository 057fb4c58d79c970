"""X3D: Expanding Architectures for Efficient Video Recognition (Feichtenhofer, CVPR 2020).

A ResNet of channel-wise separable bottlenecks grown from a tiny 2-D base network along the
expansion axes γ_w (global width), γ_b (bottleneck width), γ_d (depth), γ_t and γ_s (input frames
and crop). Following the supplement (§A.3): 3×3² channel-wise separable convolutions, SE with
ratio 1/16 after them in every other block, swish only around that layer and ReLU elsewhere,
then conv5 (1×1×1, BN, ReLU), global pooling, a 2048-d ``lin5`` with ReLU, dropout 0.5 and the
classifier. No temporal striding anywhere, so any clip length works.

Layer names follow PySlowFast's shapes one to one so that ``vidgrid.models.convert`` maps its and
PyTorchVideo's checkpoints by a key table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from vidgrid.models.layers import (
    Bottleneck,
    ClassifierHead,
    VideoModel,
    bn3d,
    drop_path_rates,
    init_weights,
)
from vidgrid.models.registry import check_ranges, register_family

_BASE_DEPTHS = (1, 2, 5, 3)
"""Blocks of res2..res5 in the X2D base network (X3D paper Table 1), before γ_d."""
_SE_RATIO = 1 / 16


@dataclass(frozen=True)
class X3DConfig:
    """One X3D instance: expansion factors and the input it was expanded for."""

    width_factor: float
    """γ_w: global width multiplier of the base widths (stem 12, stages 12/24/48/96)."""
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

    def __post_init__(self) -> None:
        check_ranges(self, positive=("width_factor", "depth_factor", "frames", "crop", "sampling_rate",
                                     "bottleneck_factor", "dim_c1", "dim_c5"))


X3D_CONFIGS: dict[str, X3DConfig] = {
    # X3D-XS (4×160²)
    "x3d_xs": X3DConfig(width_factor=2.0, depth_factor=2.2, frames=4, crop=160, sampling_rate=12),
    # X3D-S (13×160²)
    "x3d_s": X3DConfig(width_factor=2.0, depth_factor=2.2, frames=13, crop=160, sampling_rate=6),
    # X3D-M (16×224²)
    "x3d_m": X3DConfig(width_factor=2.0, depth_factor=2.2, frames=16, crop=224, sampling_rate=5),
    # X3D-L (16×312²)
    "x3d_l": X3DConfig(width_factor=2.0, depth_factor=5.0, frames=16, crop=312, sampling_rate=5),
    # X3D-XL (16×312²)
    "x3d_xl": X3DConfig(width_factor=2.9, depth_factor=5.0, frames=16, crop=312, sampling_rate=5),
}


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
        self.default_input = (3, cfg.frames, cfg.crop, cfg.crop)
        self.default_sampling_rate = cfg.sampling_rate
        dim_stem, outs, inners, depths = stage_widths(cfg)
        self.feature_channels = (inners[-1],)
        rates = iter(drop_path_rates(cfg.drop_path, sum(depths)))

        self.stem = X3DStem(3, dim_stem)
        dim_in = dim_stem
        for stage, (dim_out, dim_inner, depth) in enumerate(zip(outs, inners, depths)):
            blocks = [
                Bottleneck(
                    dim_in if i == 0 else dim_out, dim_inner, dim_out,
                    kernel_a=(1, 1, 1), kernel_b=(3, 3, 3), stride=2 if i == 0 else 1, groups_b=dim_inner,
                    se_hidden=round_width(dim_inner, _SE_RATIO, divisor=8, min_width=8) if i % 2 == 0 else 0,
                    act_b="swish", drop_path=next(rates),
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


register_family(X3D_CONFIGS, X3D)
