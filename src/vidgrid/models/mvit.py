"""MViT: Multiscale Vision Transformers for video.

MViTv1 (Fan et al., "Multiscale Vision Transformers", ICCV 2021) and MViTv2 (Li et al., "MViTv2:
Improved Multiscale Vision Transformers for Classification and Detection", CVPR 2022), with the
backbone layout of the MultiTrain supplement (Table 2) and its separate learnable spatial
and temporal position embeddings (MultiTrain supplement, Eq. 1).

A clip (B, 3, T, H, W) is cut into 3×7×7 patches with stride 2×4×4 (one token per 2×4×4 pixels), a
class token is prepended, and four stages of multiscale blocks follow. Each new stage halves the
spatial token grid by pooling the queries and doubles the width and the number of heads; keys and
values are pooled more strongly (stride 8, 4, 2, 1 over the stages) so attention stays affordable.

MViTv2 differs from v1 by (a) the residual pooling connection (the pooled query is added to the
attention output), (b) decomposed relative position embeddings in attention, (c) pooling the query
in every block and (d) changing the width inside attention rather than in the previous MLP.

Position information of both kinds is selectable (``rel_pos``, ``abs_pos``). Both are made for the
token grid of the variant's default input and are interpolated when the input grid differs, so one
set of weights runs on every multigrid shape (e.g. 4×64², 8×96², 16×224²).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vidgrid.errors import ModelError
from vidgrid.models.layers import ClassifierHead, DropPath, VideoModel, drop_path_rates
from vidgrid.models.mvit_position import SeparablePositionEmbedding, Triple, rel_pos_bias, rel_table_length
from vidgrid.models.registry import check_ranges, register_family

NormPlacement = Literal["pre", "post", "sandwich"]

PATCH_KERNEL: Triple = (3, 7, 7)
PATCH_STRIDE: Triple = (2, 4, 4)
PATCH_PADDING: Triple = (1, 3, 3)
Q_STRIDE: Triple = (1, 2, 2)
"""Query pooling stride at the first block of stages 2-4 (halves the spatial token grid)."""
LN_EPS = 1e-6
POOL_LN_EPS = {1: 1e-5, 2: 1e-6}
"""eps of the LayerNorms after attention pooling: MViTv1 as released (PyTorchVideo, PySlowFast of the
v1 era) used nn.LayerNorm's default; MViTv2 uses 1e-6 like every other LayerNorm."""


@dataclass(frozen=True)
class MViTConfig:
    """One MViT variant: stage layout, position information and training options."""

    version: Literal[1, 2]
    """1 = MViTv1 pooling attention; 2 = MViTv2 (residual pooling, q pooled in every block, width
    changed inside attention)."""
    depths: tuple[int, ...]
    """Blocks per stage (MultiTrain supplement Table 2 for MViTv2-B: 2, 3, 16, 3)."""
    frames: int
    """Frames of the default input; the position embeddings are made for its token grid."""
    sampling_rate: int
    """Temporal stride of the default input in source frames."""
    crop: int = 224
    """Crop of the default input (pixels, square)."""
    embed_dim: int = 96
    """Width of stage 1 (patch embedding); doubled at every later stage."""
    num_heads: int = 1
    """Attention heads of stage 1; doubled at every later stage."""
    mlp_ratio: float = 4.0
    """Hidden width of the MLP relative to its input."""
    pool_kernel: Triple = (3, 3, 3)
    """Kernel of the depthwise convolutions that pool queries, keys and values."""
    kv_stride: Triple = (1, 8, 8)
    """Key/value pooling stride of stage 1; divided by the query stride at every later stage."""
    rel_pos: bool = True
    """Decomposed relative position embeddings in attention (MViTv2 §3.1)."""
    abs_pos: bool = False
    """Separate learnable spatial and temporal absolute embeddings added after patching (MultiTrain supplement Eq. 1)."""
    norm: NormPlacement = "pre"
    """LayerNorm placement (the practitioner's notes): before each sub-layer, after each residual sum, or both around it."""
    dropout: float = 0.5
    """Dropout before the classifier."""
    drop_path: float = 0.1
    """Stochastic depth rate of the last block (rising linearly from 0)."""
    checkpoint: bool = False
    """Recompute each block's activations in the backward pass (activation checkpointing)."""

    def __post_init__(self) -> None:
        check_ranges(self, positive=("frames", "sampling_rate", "crop", "embed_dim", "num_heads", "mlp_ratio"))
        if len(self.depths) < 1 or any(d < 1 for d in self.depths):
            raise ModelError(f"depths {self.depths!r}: expected one or more positive block counts", option="depths")
        if self.embed_dim % self.num_heads:
            raise ModelError(
                f"embed_dim {self.embed_dim}: not divisible by num_heads {self.num_heads}", option="embed_dim"
            )


VARIANTS: dict[str, MViTConfig] = {
    # MViTv2-S 16×4 at 224² (MViTv2 paper; torchvision mvit_v2_s): 16 blocks, 34.5M params, 64 GMACs; drop
    # path 0.2 as in PySlowFast's MVITv2_S_16x4 recipe.
    "mvitv2_s_16x4": MViTConfig(version=2, depths=(1, 2, 11, 2), frames=16, sampling_rate=4, drop_path=0.2),
    # MViTv2-B 32×3 at 224² (MultiTrain supplement Table 2): 24 blocks, 51.2M params, 225 GMACs.
    "mvitv2_b_32x3": MViTConfig(version=2, depths=(2, 3, 16, 3), frames=32, sampling_rate=3, drop_path=0.3),
    # MViTv1-B 16×4 at 224² (MViT paper): 36.6M params, 70.5 GMACs; separate space/time absolute
    # embeddings, no relative ones.
    "mvitv1_b_16x4": MViTConfig(
        version=1, depths=(1, 2, 11, 2), frames=16, sampling_rate=4, rel_pos=False, abs_pos=True, drop_path=0.2
    ),
}


# ----------------------------------------------------------------------------------------------
# Layout: pure functions of the config
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockSpec:
    """Everything one multiscale block needs to know, derived from the variant (no tensors)."""

    dim: int
    dim_out: int
    num_heads: int
    q_stride: Triple
    kv_stride: Triple
    pool_q: bool
    """Whether the query is pooled (v2: every block; v1: only where it is strided)."""
    grid: Triple
    """Token grid (T, H, W) at the block's input for the default input."""


def pooled_size(n: int, kernel: int, stride: int) -> int:
    """Output length of a convolution/pool with padding ``kernel // 2`` (the token pooling rule)."""
    return (n + 2 * (kernel // 2) - kernel) // stride + 1


def pooled_grid(grid: Triple, kernel: Triple, stride: Triple) -> Triple:
    """Token grid (T, H, W) after pooling with ``kernel``/``stride`` and half-kernel padding."""
    t, h, w = (pooled_size(n, k, s) for n, k, s in zip(grid, kernel, stride))
    return (t, h, w)


def patch_grid(frames: int, crop_h: int, crop_w: int) -> Triple:
    """Token grid (T, H, W) of the 3×7×7 / 2×4×4 patch embedding for a clip of this size."""
    sizes = (frames, crop_h, crop_w)
    t, h, w = ((n + 2 * p - k) // s + 1 for n, k, s, p in zip(sizes, PATCH_KERNEL, PATCH_STRIDE, PATCH_PADDING))
    return (t, h, w)


def block_specs(cfg: MViTConfig) -> list[BlockSpec]:
    """Per-block widths, heads and pooling strides of a variant.

    Stage ``s > 1`` opens with a block that pools the query by 1×2×2 and doubles the heads; the
    width doubles inside that block's attention (v2) or in the MLP of the block before it (v1).
    Keys and values start at ``kv_stride`` and are divided by each query stride ("adaptive" stride).
    """
    stage_of = [s for s, depth in enumerate(cfg.depths) for _ in range(depth)]
    first = {sum(cfg.depths[:s]) for s in range(1, len(cfg.depths))}
    kv: Triple = cfg.kv_stride
    grid = patch_grid(cfg.frames, cfg.crop, cfg.crop)
    specs: list[BlockSpec] = []
    for i, stage in enumerate(stage_of):
        width, heads = cfg.embed_dim * 2**stage, cfg.num_heads * 2**stage
        q: Triple = Q_STRIDE if i in first else (1, 1, 1)
        kv = (max(kv[0] // q[0], 1), max(kv[1] // q[1], 1), max(kv[2] // q[2], 1))
        if cfg.version == 2:
            dim = width // 2 if i in first else width
            dim_out = width
        else:
            dim = width
            dim_out = width * 2 if i + 1 in first else width
        specs.append(BlockSpec(dim, dim_out, heads, q, kv, cfg.version == 2 or q != (1, 1, 1), grid))
        if q != (1, 1, 1):
            grid = pooled_grid(grid, cfg.pool_kernel, q)
    return specs


# ----------------------------------------------------------------------------------------------
# Pooling attention and the multiscale block
# ----------------------------------------------------------------------------------------------


def pool_tokens(x: Tensor, pool: nn.Module | None, thw: Triple) -> tuple[Tensor, Triple]:
    """Pool the (T, H, W) token grid of ``x`` (..., 1 + N, C), leaving the class token alone."""
    if pool is None:
        return x, thw
    lead, c = x.shape[:-2], x.shape[-1]
    cls_tok, tokens = x[..., :1, :], x[..., 1:, :]
    grid = tokens.reshape(-1, *thw, c).permute(0, 4, 1, 2, 3)  # (..., N, C) -> (B', C, T, H, W)
    grid = pool(grid)
    new_thw: Triple = (grid.shape[2], grid.shape[3], grid.shape[4])
    tokens = grid.flatten(2).transpose(1, 2).reshape(*lead, -1, c)  # (B', C, T', H', W') -> (..., N', C)
    return torch.cat([cls_tok, tokens], dim=-2), new_thw


class MultiScaleAttention(nn.Module):
    """Multi-head pooling attention (MViT §3.1; MViTv2 §3.1-3.2).

    Queries, keys and values are pooled by depthwise 3-D convolutions (shared across heads, each
    followed by LayerNorm); v2 adds the pooled query back to the output (residual pooling) and may add
    the decomposed relative position bias.
    """

    def __init__(
        self, spec: BlockSpec, dim_out: int, *, kernel: Triple, residual_pooling: bool, rel_pos: bool, pool_eps: float
    ) -> None:
        super().__init__()
        self.num_heads = spec.num_heads
        head_dim = dim_out // spec.num_heads
        self.scale = head_dim**-0.5
        self.residual_pooling = residual_pooling
        self.qkv = nn.Linear(spec.dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)
        pool = lambda stride: _pool_layer(head_dim, kernel, stride, eps=pool_eps)  # noqa: E731
        self.pool_q, self.norm_q = pool(spec.q_stride) if spec.pool_q else (None, None)
        self.pool_k, self.norm_k = pool(spec.kv_stride)
        self.pool_v, self.norm_v = pool(spec.kv_stride)
        if rel_pos:
            q_thw = pooled_grid(spec.grid, kernel, spec.q_stride) if spec.pool_q else spec.grid
            k_thw = pooled_grid(spec.grid, kernel, spec.kv_stride)
            t, h, w = (rel_table_length(q_n, k_n) for q_n, k_n in zip(q_thw, k_thw))
            self.rel_pos_t = nn.Parameter(torch.zeros(t, head_dim))
            self.rel_pos_h = nn.Parameter(torch.zeros(h, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(w, head_dim))
            for p in (self.rel_pos_t, self.rel_pos_h, self.rel_pos_w):
                nn.init.trunc_normal_(p, std=0.02)
        self.rel_pos = rel_pos

    def forward(self, x: Tensor, thw: Triple) -> tuple[Tensor, Triple]:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # -> (3, B, heads, N, C)
        q, k, v = qkv.unbind(0)
        q, q_thw = _pool_normed(q, self.pool_q, self.norm_q, thw)
        k, k_thw = _pool_normed(k, self.pool_k, self.norm_k, thw)
        v, _ = _pool_normed(v, self.pool_v, self.norm_v, thw)
        bias = None
        if self.rel_pos:
            bias = rel_pos_bias(q, q_thw, k_thw, (self.rel_pos_t, self.rel_pos_h, self.rel_pos_w)).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)  # (B, heads, 1 + Nq, C)
        if self.residual_pooling:
            out = out + F.pad(q[:, :, 1:], (0, 0, 1, 0))  # pooled query added to every token but the class token
        out = out.transpose(1, 2).flatten(2)  # (B, heads, 1 + Nq, C) -> (B, 1 + Nq, heads·C)
        return self.proj(out), q_thw


def _pool_layer(channels: int, kernel: Triple, stride: Triple, *, eps: float) -> tuple[nn.Conv3d, nn.LayerNorm]:
    """Depthwise 3-D convolution pooling one head's tokens, and the LayerNorm that follows it."""
    padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
    conv = nn.Conv3d(channels, channels, kernel, stride=stride, padding=padding, groups=channels, bias=False)
    return conv, nn.LayerNorm(channels, eps=eps)


def _pool_normed(x: Tensor, pool: nn.Module | None, norm: nn.Module | None, thw: Triple) -> tuple[Tensor, Triple]:
    """Pool (B, heads, 1 + N, C) tokens and normalise them (MViT's pooling operator P(·; Θ))."""
    if pool is None or norm is None:
        return x, thw
    x, thw = pool_tokens(x, pool, thw)
    return norm(x), thw


class Mlp(nn.Module):
    """Linear → GELU → linear."""

    def __init__(self, dim: int, hidden: int, dim_out: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MultiScaleBlock(nn.Module):
    """One MViT block: pooling attention and an MLP, each a residual sub-layer.

    The attention shortcut is max-pooled like the query (kernel s+1, stride s); where the width
    changes, the shortcut goes through a linear ``proj`` (in attention for v2, in the MLP for v1).
    ``norm`` places LayerNorm before each sub-layer ("pre", default), after each residual sum
    ("post"), or before each sub-layer and on its output before the sum ("sandwich"; the practitioner's notes).
    """

    def __init__(
        self, spec: BlockSpec, *, version: int, kernel: Triple, mlp_ratio: float, rel_pos: bool,
        drop_path: float, norm: NormPlacement,
    ) -> None:
        super().__init__()
        self.norm_placement = norm
        att_dim = spec.dim_out if version == 2 else spec.dim
        self.shortcut_proj_in_attn = version == 2 and spec.dim != spec.dim_out
        self.shortcut_proj_in_mlp = version == 1 and spec.dim != spec.dim_out
        ln = lambda d: nn.LayerNorm(d, eps=LN_EPS)  # noqa: E731
        # post-LN normalises the sums, so its norms have the sub-layer's output width
        self.norm1 = ln(att_dim if norm == "post" else spec.dim)
        self.attn = MultiScaleAttention(
            spec, att_dim, kernel=kernel, residual_pooling=version == 2, rel_pos=rel_pos, pool_eps=POOL_LN_EPS[version]
        )
        self.norm2 = ln(spec.dim_out if norm == "post" else att_dim)
        self.mlp = Mlp(att_dim, int(att_dim * mlp_ratio), spec.dim_out)
        if norm == "sandwich":
            self.attn_out_norm = ln(att_dim)
            self.mlp_out_norm = ln(spec.dim_out)
        if spec.dim != spec.dim_out:
            self.proj = nn.Linear(spec.dim, spec.dim_out)
        skip_kernel = [s + 1 if s > 1 else s for s in spec.q_stride]
        strided = spec.q_stride != (1, 1, 1)
        self.pool_skip = nn.MaxPool3d(skip_kernel, spec.q_stride, [k // 2 for k in skip_kernel]) if strided else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, thw: Triple) -> tuple[Tensor, Triple]:
        """(B, 1 + N, dim) tokens on grid ``thw`` -> (B, 1 + N', dim_out) on the pooled grid."""
        post = self.norm_placement == "post"
        # attention sub-layer
        h = x if post else self.norm1(x)
        y, new_thw = self.attn(h, thw)
        if self.norm_placement == "sandwich":
            y = self.attn_out_norm(y)
        shortcut, _ = pool_tokens(self.proj(h) if self.shortcut_proj_in_attn else x, self.pool_skip, thw)
        x = shortcut + self.drop_path(y)
        if post:
            x = self.norm1(x)
        # MLP sub-layer
        h = x if post else self.norm2(x)
        y = self.mlp(h)
        if self.norm_placement == "sandwich":
            y = self.mlp_out_norm(y)
        x = (self.proj(h) if self.shortcut_proj_in_mlp else x) + self.drop_path(y)
        if post:
            x = self.norm2(x)
        return x, new_thw


class ClassTokenHead(ClassifierHead):
    """Class token → dropout → linear classifier (the MViT head)."""

    def pool(self, features: Tensor) -> Tensor:  # type: ignore[override]
        return features[:, 0]  # (B, 1 + N, C) -> (B, C)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


class MViT(VideoModel):
    """MViTv1/MViTv2 for clip classification; ``forward_features`` returns the normalised tokens
    (B, 1 + N, C) with the class token first, and the head classifies the class token."""

    min_frames = 2
    frames_multiple = 2  # one temporal patch per 2 frames
    crop_multiple = 1  # padded convolutions accept any crop (multigrid uses e.g. 158 = 224/√2)

    def __init__(self, cfg: MViTConfig, *, num_classes: int = 400) -> None:
        super().__init__()
        self.cfg = cfg
        self.default_input = (3, cfg.frames, cfg.crop, cfg.crop)
        self.default_sampling_rate = cfg.sampling_rate
        specs = block_specs(cfg)
        self.patch_embed = nn.Conv3d(3, cfg.embed_dim, PATCH_KERNEL, stride=PATCH_STRIDE, padding=PATCH_PADDING)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = SeparablePositionEmbedding(cfg.embed_dim, specs[0].grid) if cfg.abs_pos else None
        rates = drop_path_rates(cfg.drop_path, len(specs))
        self.blocks = nn.ModuleList(
            MultiScaleBlock(
                spec, version=cfg.version, kernel=cfg.pool_kernel, mlp_ratio=cfg.mlp_ratio, rel_pos=cfg.rel_pos,
                drop_path=rate, norm=cfg.norm,
            )
            for spec, rate in zip(specs, rates)
        )
        width = specs[-1].dim_out
        self.feature_channels = (width,)
        # post-LN blocks already end in a LayerNorm
        self.norm = nn.Identity() if cfg.norm == "post" else nn.LayerNorm(width, eps=LN_EPS)
        self._init_weights()
        self.head = ClassTokenHead(width, num_classes, dropout=cfg.dropout)

    def _init_weights(self) -> None:
        """Truncated-normal (σ 0.02) linear weights and class token, zero biases (MViT §A)."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, T, H, W) clip -> (B, 1 + N, C) normalised tokens of the last stage."""
        x = self.patch_embed(x)  # (B, 3, T, H, W) -> (B, C, T/2, H/4, W/4)
        thw: Triple = (x.shape[2], x.shape[3], x.shape[4])
        x = x.flatten(2).transpose(1, 2)  # (B, C, T', H', W') -> (B, N, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # -> (B, 1 + N, C)
        if self.pos_embed is not None:
            x = x + self.pos_embed(thw)
        for block in self.blocks:
            if self.cfg.checkpoint and self.training and torch.is_grad_enabled():
                x, thw = checkpoint(block, x, thw, use_reentrant=False)
            else:
                x, thw = block(x, thw)
        return self.norm(x)

    def no_weight_decay(self) -> set[str]:
        """LayerNorm affine parameters plus the class token and every position embedding."""
        extra = {name for name, _ in self.named_parameters() if "pos_embed" in name or "rel_pos" in name}
        return super().no_weight_decay() | extra | {"cls_token"}


register_family(VARIANTS, MViT)

__all__ = ["MViT", "MViTConfig", "VARIANTS", "block_specs"]
