"""MViT's position information: decomposed relative position bias (MViTv2 §3.1, Eq. 4) and separate
spatial/temporal absolute embeddings (MViTv1; MultiTrain supplement Eq. 1), both interpolated to any token grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Triple = tuple[int, int, int]



def rel_pos_index(q_n: int, k_n: int, device: torch.device | None = None) -> Tensor:
    """Relative distance index (q_n, k_n) into a table of 2·max(q_n, k_n) − 1 entries.

    Query and key coordinates are scaled to the finer of the two grids first, so a pooled key
    grid compares positions in the same units as the query grid (MViTv2 §3.1, Eq. 4).
    """
    q_ratio = max(k_n / q_n, 1.0)
    k_ratio = max(q_n / k_n, 1.0)
    q_pos = torch.arange(q_n, device=device, dtype=torch.float32)[:, None] * q_ratio
    k_pos = torch.arange(k_n, device=device, dtype=torch.float32)[None, :] * k_ratio
    return (q_pos - k_pos + (k_n - 1) * k_ratio).long()


def resize_rel_table(table: Tensor, length: int) -> Tensor:
    """Linearly interpolate a (L, C) relative-position table to (length, C) when L differs."""
    if table.shape[0] == length:
        return table
    # (L, C) -> (1, C, L) -> (1, C, length) -> (length, C)
    return F.interpolate(table.t().unsqueeze(0), size=length, mode="linear", align_corners=False)[0].t()


def rel_table_length(q_n: int, k_n: int) -> int:
    """Entries of a decomposed relative-position table for query/key lengths ``q_n``, ``k_n``."""
    return 2 * max(q_n, k_n) - 1


def rel_pos_bias(q: Tensor, q_thw: Triple, k_thw: Triple, tables: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Decomposed relative position bias (MViTv2 Eq. 4): ``q · R_t + q · R_h + q · R_w``.

    ``q`` (B, heads, 1 + Nq, C) includes the class token, which gets no bias. Returns the additive
    attention bias (B, heads, 1 + Nq, 1 + Nk), interpolating the tables when the grids differ from
    the ones they were made for.
    """
    b, heads, _, c = q.shape
    (qt, qh, qw), (kt, kh, kw) = q_thw, k_thw
    r_q = q[:, :, 1:].reshape(b, heads, qt, qh, qw, c)  # (B, n, Nq, C) -> (B, n, qt, qh, qw, C)
    terms = []
    for axis, (table, q_n, k_n) in enumerate(zip(tables, q_thw, k_thw)):
        r = resize_rel_table(table, rel_table_length(q_n, k_n))[rel_pos_index(q_n, k_n, q.device)]  # (q_n, k_n, C)
        r = r.to(q.dtype)
        pattern = ("bnthwc,tkc->bnthwk", "bnthwc,hkc->bnthwk", "bnthwc,wkc->bnthwk")[axis]
        terms.append(torch.einsum(pattern, r_q, r))  # (B, n, qt, qh, qw, k_axis)
    rel_t, rel_h, rel_w = terms
    bias = (
        rel_t[..., :, None, None] + rel_h[..., None, :, None] + rel_w[..., None, None, :]
    )  # (B, n, qt, qh, qw, kt, kh, kw)
    bias = bias.reshape(b, heads, qt * qh * qw, kt * kh * kw)
    return F.pad(bias, (1, 0, 1, 0))  # class token row and column: no bias


class SeparablePositionEmbedding(nn.Module):
    """Separate learnable spatial and temporal absolute embeddings (MultiTrain supplement Eq. 1).

    ``P(p_s, p_t)`` repeats the spatial table over time and the temporal table over space; the class
    token has its own embedding. Tables are interpolated (bicubic in space, linear in time) when the
    token grid differs from ``grid``.
    """

    def __init__(self, dim: int, grid: Triple) -> None:
        super().__init__()
        self.grid = grid
        t, h, w = grid
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
        self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
        for p in self.parameters():
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, thw: Triple) -> Tensor:
        """Embedding (1, 1 + T·H·W, C) for a token grid ``thw``."""
        t, h, w = thw
        t0, h0, w0 = self.grid
        spatial, temporal = self.pos_embed_spatial, self.pos_embed_temporal
        if (h, w) != (h0, w0):
            # (1, H0·W0, C) -> (1, C, H0, W0) -> (1, C, H, W) -> (1, H·W, C)
            grid = spatial.reshape(1, h0, w0, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            spatial = grid.flatten(2).transpose(1, 2)
        if t != t0:
            # (1, T0, C) -> (1, C, T0) -> (1, C, T) -> (1, T, C)
            temporal = F.interpolate(temporal.transpose(1, 2), size=t, mode="linear", align_corners=False)
            temporal = temporal.transpose(1, 2)
        pos = spatial.repeat(1, t, 1) + temporal.repeat_interleave(h * w, dim=1)  # (1, T·H·W, C)
        return torch.cat([self.pos_embed_class, pos], dim=1)
