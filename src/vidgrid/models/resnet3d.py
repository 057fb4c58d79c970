"""The 3-D ResNet family of "SlowFast Networks for Video Recognition" (Feichtenhofer et al., ICCV 2019):
C2D, I3D (with the non-local blocks of Wang et al., CVPR 2018: I3D-NL), Slow and SlowFast.

All are ResNet-50/101 bottleneck networks that differ only in their temporal kernels (SlowFast
paper Table 1 and its "temporal kernel basis"), an optional temporal max-pool after res2 (C2D,
I3D), and — for SlowFast — a second, lighter Fast pathway (β = 1/8 of the channels, α× the frame
rate) fused into the Slow one after conv1, res2, res3 and res4 by time-strided convolutions
(paper §3.4: kernel 5×1² or 7×1², stride α, output 2βC channels, concatenated).

Layer names and shapes follow PySlowFast one to one so that ``vidgrid.models.convert`` maps its and
PyTorchVideo's checkpoints by a key table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
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
from vidgrid.models.registry import check_ranges, register_family

STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STAGES = ("res2", "res3", "res4", "res5")

TemporalKernels = tuple[int, tuple[tuple[int, ...], ...]]
"""(conv1 temporal kernel, per stage the temporal kernels of ``conv_a`` cycled over its blocks)."""
NonLocalForm = Literal["dot_product", "softmax"]

_C2D: TemporalKernels = (1, ((1,), (1,), (1,), (1,)))
_I3D: TemporalKernels = (5, ((3,), (3, 1), (3, 1), (1, 3)))
_SLOW: TemporalKernels = (1, ((1,), (1,), (3,), (3,)))
_FAST: TemporalKernels = (5, ((3,), (3,), (3,), (3,)))


@dataclass(frozen=True)
class ResNet3DConfig:
    """A single-pathway 3-D ResNet (C2D, I3D, Slow)."""

    depth: Literal[50, 101]
    """ResNet depth: 50 or 101 (blocks per stage from ``STAGE_DEPTHS``)."""
    kernels: TemporalKernels
    """Temporal kernel sizes of conv1 and of each stage's ``conv_a``."""
    temporal_pool: bool
    """Max-pool 2×1×1 after res2 (C2D and I3D), halving the frames of res3..res5."""
    frames: int
    """Default input frames."""
    sampling_rate: int = 8
    """Default temporal stride in source frames."""
    crop: int = 224
    """Default input crop."""
    nonlocal_blocks: tuple[tuple[int, ...], ...] = ((), (), (), ())
    """Per stage, the block indices followed by a non-local block (I3D-NL: res3 {1, 3}, res4 {1, 3, 5})."""
    nonlocal_form: NonLocalForm = "dot_product"
    """Pairwise function of the non-local blocks: ``dot_product``, the multigrid paper's I3D-NL (§4.4,
    "5 (dot product) non-local blocks"), or ``softmax`` (embedded Gaussian)."""
    width: int = 64
    """Base width: stage k has inner width ``width·2^k`` and output width ``4·width·2^k``."""
    stage_depths: tuple[int, int, int, int] | None = None
    """Blocks of res2..res5; None: ResNet-``depth``'s (``STAGE_DEPTHS``)."""
    dropout: float = 0.5
    """Dropout before the classifier."""
    drop_path: float = 0.0
    """Stochastic depth rate of the last block (rising linearly from 0)."""

    def __post_init__(self) -> None:
        check_ranges(self, positive=("frames", "sampling_rate", "crop", "width", "stage_depths"))


@dataclass(frozen=True)
class SlowFastConfig:
    """A two-pathway SlowFast network."""

    depth: Literal[50, 101]
    """ResNet depth of both pathways."""
    alpha: int
    """α: frame-rate ratio Fast/Slow; the Slow pathway sees every α-th frame."""
    fusion_kernel: int
    """Temporal kernel of the lateral time-strided convolutions (5 or 7)."""
    frames: int
    """Default input frames (of the Fast pathway)."""
    sampling_rate: int = 2
    """Default temporal stride of the Fast pathway in source frames (the Slow pathway's is α times it)."""
    beta_inv: int = 8
    """1/β: channel ratio Slow/Fast."""
    fusion_ratio: int = 2
    """Lateral output channels relative to the Fast pathway's (2βC)."""
    crop: int = 224
    """Default input crop."""
    slow_kernels: TemporalKernels = field(default=_SLOW)
    """Temporal kernels of the Slow pathway."""
    fast_kernels: TemporalKernels = field(default=_FAST)
    """Temporal kernels of the Fast pathway."""
    width: int = 64
    """Base width of the Slow pathway (the Fast pathway's is ``width / beta_inv``)."""
    stage_depths: tuple[int, int, int, int] | None = None
    """Blocks of res2..res5 in both pathways; None: ResNet-``depth``'s (``STAGE_DEPTHS``)."""
    dropout: float = 0.5
    """Dropout before the classifier."""
    drop_path: float = 0.0
    """Stochastic depth rate of the last block (rising linearly from 0)."""

    def __post_init__(self) -> None:
        check_ranges(self, positive=("alpha", "fusion_kernel", "frames", "sampling_rate", "beta_inv", "fusion_ratio",
                                     "crop", "width", "stage_depths"))
        if self.width < self.beta_inv:
            raise ModelError(f"width {self.width}: expected >= beta_inv {self.beta_inv} (the Fast pathway's width is "
                             "width / beta_inv)", option="width")


def blocks_per_stage(cfg: ResNet3DConfig | SlowFastConfig) -> tuple[int, ...]:
    """Blocks of res2..res5: ``cfg.stage_depths``, or those of ResNet-``cfg.depth``."""
    return STAGE_DEPTHS[cfg.depth] if cfg.stage_depths is None else cfg.stage_depths


RESNET3D_CONFIGS: dict[str, ResNet3DConfig] = {
    # C2D ResNet-50, 8 frames (2-D kernels, temporal pool after res2)
    "c2d_r50_8x8": ResNet3DConfig(depth=50, kernels=_C2D, temporal_pool=True, frames=8),
    # I3D ResNet-50, 8 frames (inflated 5×7² conv1 and 3×1² kernels in alternate blocks)
    "i3d_r50_8x8": ResNet3DConfig(depth=50, kernels=_I3D, temporal_pool=True, frames=8),
    # I3D-NL ResNet-50, 8 frames: I3D with 5 dot-product non-local blocks (2 in res3, 3 in res4);
    # ``nonlocal_form="softmax"`` selects the embedded-Gaussian form
    "i3d_nl_r50_8x8": ResNet3DConfig(
        depth=50, kernels=_I3D, temporal_pool=True, frames=8, nonlocal_blocks=((), (1, 3), (1, 3, 5), ())
    ),
    # Slow-only ResNet-50, 8 frames (temporal kernels only in res4 and res5)
    "slow_r50_8x8": ResNet3DConfig(depth=50, kernels=_SLOW, temporal_pool=False, frames=8),
}

SLOWFAST_CONFIGS: dict[str, SlowFastConfig] = {
    # SlowFast ResNet-50 4×16: α = 8 (32 Fast frames, 4 Slow), lateral kernel 5
    "slowfast_r50_4x16": SlowFastConfig(depth=50, alpha=8, fusion_kernel=5, frames=32),
    # SlowFast ResNet-50 8×8: α = 4 (32 Fast frames, 8 Slow), lateral kernel 7
    "slowfast_r50_8x8": SlowFastConfig(depth=50, alpha=4, fusion_kernel=7, frames=32),
    # SlowFast ResNet-101 8×8: α = 4, lateral kernel 5
    "slowfast_r101_8x8": SlowFastConfig(depth=101, alpha=4, fusion_kernel=5, frames=32),
}


class Stem(nn.Module):
    """conv1 (t×7², stride 1×2², no bias) → BN → ReLU → max-pool 1×3² (stride 1×2²)."""

    def __init__(self, dim_in: int, dim_out: int, *, kernel_t: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            dim_in, dim_out, (kernel_t, 7, 7), stride=(1, 2, 2), padding=(kernel_t // 2, 3, 3), bias=False
        )
        self.bn = bn3d(dim_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class NonLocal(nn.Module):
    """Non-local block (Wang et al., CVPR 2018, Eq. 1): y = x + BN(W_out · f(θ(x), φ(x̄)) g(x̄)), with
    x̄ max-pooled 1×2² for φ and g, and f the dot product divided by the number N of pooled positions
    (``dot_product``, Eq. 4) or softmax(θᵀφ / √d) (``softmax``, embedded Gaussian, Eq. 2-3); the
    normalisations are PySlowFast's ``NONLOCAL.INSTANTIATION`` ones."""

    def __init__(self, dim: int, dim_inner: int, *, form: NonLocalForm, pool: tuple[int, int, int] = (1, 2, 2)) -> None:
        super().__init__()
        self.form = form
        self.conv_theta = nn.Conv3d(dim, dim_inner, 1)
        self.conv_phi = nn.Conv3d(dim, dim_inner, 1)
        self.conv_g = nn.Conv3d(dim, dim_inner, 1)
        self.pool = nn.MaxPool3d(pool, stride=pool)
        self.conv_out = nn.Conv3d(dim_inner, dim, 1)
        self.bn = bn3d(dim)

    def forward(self, x: Tensor) -> Tensor:
        b, _, t, h, w = x.shape
        theta = self.conv_theta(x).flatten(2).transpose(1, 2)  # (B, C', T, H, W) -> (B, THW, C')
        pooled = self.pool(x) if min(x.shape[3:]) >= 2 else x
        phi = self.conv_phi(pooled).flatten(2).transpose(1, 2)  # -> (B, N, C')
        g = self.conv_g(pooled).flatten(2).transpose(1, 2)  # -> (B, N, C')
        if self.form == "softmax":
            y = F.scaled_dot_product_attention(theta, phi, g)  # softmax(θφᵀ/√C') g: (B, THW, C')
        else:
            y = (theta @ phi.transpose(1, 2) / phi.shape[1]) @ g  # (θφᵀ / N) g: (B, THW, C')
        y = y.transpose(1, 2).reshape(b, -1, t, h, w)  # (B, THW, C') -> (B, C', T, H, W)
        return x + self.bn(self.conv_out(y))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn.weight)


class ResStage(nn.Module):
    """One stage: bottleneck ``blocks`` (the first one strided), some followed by a non-local block."""

    def __init__(self, blocks: list[Bottleneck], nonlocal_blocks: dict[int, NonLocal]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.nonlocal_blocks = nn.ModuleDict({str(i): m for i, m in nonlocal_blocks.items()})

    def forward(self, x: Tensor) -> Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.nonlocal_blocks:
                x = self.nonlocal_blocks[str(i)](x)
        return x


def pathway_layers(
    *,
    width: int,
    stage_depths: tuple[int, ...],
    kernels: TemporalKernels,
    extra_in: tuple[int, int, int, int] = (0, 0, 0, 0),
    nonlocal_blocks: tuple[tuple[int, ...], ...] = ((), (), (), ()),
    nonlocal_form: NonLocalForm = "dot_product",
    drop_paths: list[float],
) -> dict[str, nn.Module]:
    """conv1 and res2..res5 of one ResNet pathway of base width ``width`` (64 for ResNet-50).

    Stage k (0-based) has inner width ``width·2^k`` and output width ``4·width·2^k``; res3..res5
    halve the resolution. ``extra_in`` adds the channels a lateral connection concatenates to each
    stage's input (the SlowFast Slow pathway). Non-local indices past a (shortened) stage are dropped."""
    stem_kernel, stage_kernels = kernels
    layers: dict[str, nn.Module] = {"stem": Stem(3, width, kernel_t=stem_kernel)}
    rates = iter(drop_paths)
    dim_in = width
    for k, (name, depth) in enumerate(zip(STAGES, stage_depths)):
        dim_inner, dim_out = width * 2**k, 4 * width * 2**k
        blocks = [
            Bottleneck(
                (dim_in + extra_in[k]) if i == 0 else dim_out, dim_inner, dim_out,
                kernel_a=(stage_kernels[k][i % len(stage_kernels[k])], 1, 1), kernel_b=(1, 3, 3),
                stride=2 if (i == 0 and k > 0) else 1, drop_path=next(rates),
            )
            for i in range(depth)
        ]
        nonlocals = {i: NonLocal(dim_out, dim_out // 2, form=nonlocal_form) for i in nonlocal_blocks[k] if i < depth}
        layers[name] = ResStage(blocks, nonlocals)
        dim_in = dim_out
    return layers


class ResNet3D(VideoModel):
    """Single-pathway 3-D ResNet: C2D, I3D (-NL) or Slow, with a global-pool classifier head."""

    def __init__(self, cfg: ResNet3DConfig, *, num_classes: int = 400) -> None:
        super().__init__()
        self.default_input = (3, cfg.frames, cfg.crop, cfg.crop)
        self.default_sampling_rate = cfg.sampling_rate
        self.feature_channels = (32 * cfg.width,)
        self.temporal_pool = cfg.temporal_pool
        if cfg.temporal_pool:
            self.min_frames = self.frames_multiple = 2
        depths = blocks_per_stage(cfg)
        layers = pathway_layers(
            width=cfg.width, stage_depths=depths, kernels=cfg.kernels, nonlocal_blocks=cfg.nonlocal_blocks,
            nonlocal_form=cfg.nonlocal_form, drop_paths=drop_path_rates(cfg.drop_path, sum(depths)),
        )
        for name, module in layers.items():
            self.add_module(name, module)
        self.head = ClassifierHead(32 * cfg.width, num_classes, dropout=cfg.dropout)
        init_weights(self)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.res2(self.stem(x))  # (B, 3, T, H, W) -> (B, 4w, T, H/4, W/4)
        if self.temporal_pool:
            x = F.max_pool3d(x, (2, 1, 1), stride=(2, 1, 1))  # -> (B, 4w, T/2, H/4, W/4)
        return self.res5(self.res4(self.res3(x)))  # -> (B, 32w, T', H/32, W/32)


class LateralFusion(nn.Module):
    """Fast → Slow lateral connection: time-strided conv (k×1², stride α, 2βC outputs) → BN → ReLU;
    the result is concatenated to the Slow features (SlowFast paper §3.4, "time-strided convolution")."""

    def __init__(self, dim_fast: int, *, ratio: int, kernel_t: int, alpha: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            dim_fast, dim_fast * ratio, (kernel_t, 1, 1), stride=(alpha, 1, 1), padding=(kernel_t // 2, 0, 0),
            bias=False,
        )
        self.bn = bn3d(dim_fast * ratio)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, slow: Tensor, fast: Tensor) -> Tensor:
        return torch.cat([slow, self.relu(self.bn(self.conv(fast)))], dim=1)  # (B, C_s + 2βC_f, T/α, H, W)


def slow_frame_indices(frames: int, alpha: int) -> Tensor:
    """The T/α frames of a T-frame clip that the Slow pathway sees: ``linspace(0, T-1, T/α)`` truncated
    (0, 4, 8, 13, ... for T = 32, α = 4), as PySlowFast's and PyTorchVideo's ``PackPathway`` pick them,
    so converted models see the frames they were trained on."""
    return torch.linspace(0, frames - 1, frames // alpha).long()


class SlowFast(VideoModel):
    """SlowFast network. Takes the Fast-rate clip (B, C, T, H, W); the Slow pathway sees T/α of its
    frames (:func:`slow_frame_indices`), the stride-α lateral convolutions match that rate."""

    def __init__(self, cfg: SlowFastConfig, *, num_classes: int = 400) -> None:
        super().__init__()
        self.default_input = (3, cfg.frames, cfg.crop, cfg.crop)
        self.default_sampling_rate = cfg.sampling_rate
        self.alpha = cfg.alpha
        self.min_frames = self.frames_multiple = cfg.alpha
        width, fast_width = cfg.width, cfg.width // cfg.beta_inv
        self.feature_channels = (32 * width, 32 * fast_width)
        fused = tuple(cfg.fusion_ratio * fast_width * (2 ** (k + 1) if k else 1) for k in range(4))  # 2βC per stage
        depths = blocks_per_stage(cfg)
        rates = drop_path_rates(cfg.drop_path, sum(depths))
        self.slow = nn.ModuleDict(
            pathway_layers(width=width, stage_depths=depths, kernels=cfg.slow_kernels, extra_in=fused, drop_paths=rates)
        )
        self.fast = nn.ModuleDict(
            pathway_layers(width=fast_width, stage_depths=depths, kernels=cfg.fast_kernels, drop_paths=rates)
        )
        self.fuse = nn.ModuleList(
            LateralFusion(c // cfg.fusion_ratio, ratio=cfg.fusion_ratio, kernel_t=cfg.fusion_kernel, alpha=cfg.alpha)
            for c in fused
        )
        self.head = ClassifierHead(32 * width + 32 * fast_width, num_classes, dropout=cfg.dropout)
        init_weights(self)

    def pathway_shapes(self, input_shape: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
        c, t, h, w = input_shape
        return [(c, t // self.alpha, h, w), (c, t, h, w)]

    def forward_features(self, x: Tensor) -> list[Tensor]:
        slow = x.index_select(2, slow_frame_indices(x.shape[2], self.alpha).to(x.device))  # -> (B, C, T/α, H, W)
        fast = x  # (B, C, T, H, W)
        slow, fast = self.slow["stem"](slow), self.fast["stem"](fast)
        slow = self.fuse[0](slow, fast)
        for k, name in enumerate(STAGES):
            slow, fast = self.slow[name](slow), self.fast[name](fast)
            if k < 3:
                slow = self.fuse[k + 1](slow, fast)
        return [slow, fast]  # (B, 32w, T/α, H/32, W/32), (B, 4w, T, H/32, W/32)


register_family(RESNET3D_CONFIGS, ResNet3D)
register_family(SLOWFAST_CONFIGS, SlowFast)
