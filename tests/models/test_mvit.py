"""MViTv1/MViTv2: sizes against the reference table, structure of the MultiTrain supplement's Table 2, shape-agnostic
forward/backward, position-embedding interpolation, norm placements, activation checkpointing."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from vidgrid.errors import ModelError
from vidgrid.models import create_model
from vidgrid.models.mvit import VARIANTS, MViT, block_specs, pooled_grid
from vidgrid.models.mvit_position import SeparablePositionEmbedding, rel_pos_bias, rel_pos_index, resize_rel_table
from vidgrid.models.profile import count_gmacs, count_params

TINY = dict(embed_dim=8, num_heads=1, depths=(1, 1, 1, 1))
SHAPES = [(4, 64), (8, 96), (8, 112)]


def tiny(name: str, **overrides) -> MViT:
    return create_model(name, num_classes=5, **{**TINY, **overrides})


# -- sizes (meta device: nothing allocated or computed) ---------------------------------------

@pytest.mark.parametrize(
    ("name", "params", "gmacs"),
    [
        ("mvitv1_b_16x4", 36_610_672, 70.5),  # exact count
        ("mvitv2_s_16x4", 34_537_744, 64.0),  # torchvision's mvit_v2_s count
        ("mvitv2_b_32x3", 51_230_128, 225.0),  # 51.2M in the reference table
    ],
)
def test_full_size_params_and_gmacs(name: str, params: int, gmacs: float) -> None:
    with torch.device("meta"):
        model = create_model(name)
    total, backbone = count_params(model)
    assert total == params
    assert backbone == total - (768 * 400 + 400)  # head = dropout + linear classifier
    assert count_gmacs(model, model.default_input) == pytest.approx(gmacs, rel=0.03)


def test_backbone_only_matches_the_practitioners_table() -> None:
    with torch.device("meta"):
        model = create_model("mvitv1_b_16x4")
    assert round(count_params(model)[1] / 1e6, 2) == 36.30  # the practitioner's notes: MViT-B backbone 36.30M


def test_stage_layout_of_multitrain_supplement_table2() -> None:
    cfg = VARIANTS["mvitv2_b_32x3"]
    specs = block_specs(cfg)
    assert len(specs) == 24
    # output of each stage: width and token grid (C × T × H × W) for a 32×224² clip
    ends = [1, 4, 20, 23]
    expected = [(96, (16, 56, 56)), (192, (16, 28, 28)), (384, (16, 14, 14)), (768, (16, 7, 7))]
    for end, (width, grid) in zip(ends, expected):
        spec = specs[end]
        out_grid = pooled_grid(spec.grid, cfg.pool_kernel, spec.q_stride)
        assert (spec.dim_out, out_grid) == (width, grid)
    assert [s.num_heads for s in specs[::1]][:6] == [1, 1, 2, 2, 2, 4]
    kv = [s.kv_stride for s in (specs[0], specs[2], specs[5], specs[21])]
    assert kv == [(1, 8, 8), (1, 4, 4), (1, 2, 2), (1, 1, 1)]


def test_v1_pools_query_only_where_strided_and_changes_width_in_mlp() -> None:
    specs = block_specs(VARIANTS["mvitv1_b_16x4"])
    assert [i for i, s in enumerate(specs) if s.pool_q] == [1, 3, 14]
    assert [(s.dim, s.dim_out) for s in specs[:2]] == [(96, 192), (192, 192)]
    assert all(s.pool_q for s in block_specs(VARIANTS["mvitv2_s_16x4"]))


# -- forward / backward on several shapes with the same weights --------------------------------

@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_tiny_forward_backward_on_multigrid_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = tiny(name)
    assert model.default_input == (3, VARIANTS[name].frames, 224, 224)
    for frames, crop in SHAPES:
        model.zero_grad()
        x = torch.randn(1, 3, frames, crop, crop)
        logits = model(x)
        assert logits.shape == (1, 5)
        logits.logsumexp(1).sum().backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    features = model.forward_features(torch.randn(1, 3, 4, 64, 64))
    assert features.shape == (1, 1 + 2 * 2 * 2, 64)  # class token + 2×2×2 stage-4 tokens, width 8·2³
    assert model.forward_head(features, pre_logits=True).shape == (1, 64)


def test_model_face_and_weight_decay_exclusions() -> None:
    model = tiny("mvitv2_s_16x4", abs_pos=True)
    names = dict(model.named_parameters())
    skip = model.no_weight_decay()
    assert skip <= set(names)
    assert {"cls_token", "pos_embed.pos_embed_spatial", "pos_embed.pos_embed_temporal"} <= skip
    assert {"blocks.0.attn.rel_pos_t", "blocks.0.attn.rel_pos_h", "blocks.0.attn.rel_pos_w"} <= skip
    assert "blocks.0.attn.qkv.weight" not in skip and "blocks.0.norm1.weight" in skip
    assert {n.split(".")[0] for n in names if n.startswith("head")} == {"head"}
    model.reset_classifier(7)
    assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 7)
    assert (model.min_frames, model.frames_multiple, model.crop_multiple) == (2, 2, 1)


def test_builder_defaults_and_overrides() -> None:
    with torch.device("meta"):
        v2b = create_model("mvitv2_b_32x3", dropout=0.2)
        v1 = create_model("mvitv1_b_16x4")
        v2s = create_model("mvitv2_s_16x4")
    assert v2s.cfg.drop_path == 0.2  # PySlowFast's MVITv2_S_16x4 recipe
    assert (v2b.cfg.dropout, v2b.cfg.drop_path, v2b.head.dropout.p) == (0.2, 0.3, 0.2)
    assert (v1.cfg.drop_path, v1.cfg.rel_pos, v1.cfg.abs_pos, v1.cfg.version) == (0.2, False, True, 1)
    assert v2b.blocks[-1].drop_path.p == pytest.approx(0.3) and v2b.blocks[0].drop_path.p == 0.0
    with pytest.raises(ModelError, match="unknown option.*width"):
        create_model("mvitv2_s_16x4", width=3)
    with pytest.raises(ModelError, match="norm"):
        create_model("mvitv2_s_16x4", norm="middle")


def test_saved_model_reloads_to_identical_outputs(tmp_path) -> None:
    torch.manual_seed(0)
    model = tiny("mvitv2_s_16x4").eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    again = tiny("mvitv2_s_16x4").eval()
    again.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.randn(1, 3, 4, 64, 64)
    assert torch.equal(model(x), again(x))


# -- position embeddings ------------------------------------------------------------------------

def test_rel_pos_bias_matches_explicit_sum_on_its_grid() -> None:
    torch.manual_seed(0)
    q_thw, k_thw, c = (2, 4, 4), (2, 2, 2), 3
    tables = tuple(torch.randn(2 * max(a, b) - 1, c) for a, b in zip(q_thw, k_thw))
    q = torch.randn(1, 1, 1 + 2 * 4 * 4, c)
    bias = rel_pos_bias(q, q_thw, k_thw, tables)  # type: ignore[arg-type]
    assert bias.shape == (1, 1, 33, 9)
    assert bias[:, :, 0].abs().sum() == 0 and bias[:, :, :, 0].abs().sum() == 0  # class token: no bias
    idx = [rel_pos_index(a, b) for a, b in zip(q_thw, k_thw)]
    qpos = [(t, h, w) for t in range(2) for h in range(4) for w in range(4)]
    kpos = [(t, h, w) for t in range(2) for h in range(2) for w in range(2)]
    for i, (qt, qh, qw) in enumerate(qpos):
        for j, (kt, kh, kw) in enumerate(kpos):
            r = tables[0][idx[0][qt, kt]] + tables[1][idx[1][qh, kh]] + tables[2][idx[2][qw, kw]]
            assert torch.allclose(bias[0, 0, 1 + i, 1 + j], q[0, 0, 1 + i] @ r, atol=1e-6)
    # the key grid is pooled 2×: key k sits at query position 2k, so equal displacements share an index
    pooled = rel_pos_index(4, 2)
    assert pooled[2, 1] == pooled[0, 0] and pooled[3, 1] == pooled[1, 0] == pooled[0, 0] + 1
    assert pooled.min() == 0 and pooled.max() < 2 * 4 - 1


def test_rel_table_resizing() -> None:
    ramp = torch.arange(7.0)[:, None].repeat(1, 2)
    assert resize_rel_table(ramp, 7) is ramp
    wider = resize_rel_table(ramp, 13)
    assert wider.shape == (13, 2)
    assert torch.all(wider[1:, 0] >= wider[:-1, 0]) and wider[0, 0] == 0 and wider[-1, 0] == 6


def test_separable_position_embedding_eq1_and_interpolation() -> None:
    torch.manual_seed(0)
    emb = SeparablePositionEmbedding(4, (2, 3, 3))
    pos = emb((2, 3, 3))  # (1, 1 + T·H·W, C)
    assert pos.shape == (1, 19, 4)
    assert torch.equal(pos[0, 0], emb.pos_embed_class[0, 0])
    # token (t, h, w) = spatial[h, w] + temporal[t]  (MultiTrain supplement Eq. 1)
    t, h, w = 1, 2, 0
    expected = emb.pos_embed_spatial[0, h * 3 + w] + emb.pos_embed_temporal[0, t]
    assert torch.allclose(pos[0, 1 + t * 9 + h * 3 + w], expected)
    bigger = emb((4, 6, 5))
    assert bigger.shape == (1, 1 + 4 * 6 * 5, 4)
    bigger.sum().backward()
    assert emb.pos_embed_spatial.grad is not None and emb.pos_embed_temporal.grad is not None


def test_interpolation_up_and_down_runs_with_one_set_of_weights() -> None:
    cfg = dataclasses.replace(VARIANTS["mvitv2_s_16x4"], frames=4, crop=32, abs_pos=True, **TINY)
    model = MViT(cfg, num_classes=3).eval()
    with torch.no_grad():
        outs = [model(torch.randn(1, 3, f, s, s)) for f, s in [(4, 32), (2, 16), (8, 64), (6, 48)]]
    assert all(o.shape == (1, 3) and torch.isfinite(o).all() for o in outs)


# -- options --------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", ["pre", "post", "sandwich"])
def test_norm_placements(norm: str) -> None:
    torch.manual_seed(0)
    model = tiny("mvitv2_s_16x4", norm=norm)
    n_norms = sum(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    blocks = len(model.blocks)
    pooling_norms = sum(getattr(b.attn, n) is not None for b in model.blocks for n in ("norm_q", "norm_k", "norm_v"))
    expected = {"pre": 2 * blocks + 1, "post": 2 * blocks, "sandwich": 4 * blocks + 1}[norm]
    assert n_norms - pooling_norms == expected
    out = model(torch.randn(2, 3, 4, 64, 64))
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = tiny("mvitv1_b_16x4", drop_path=0.3)
    ckpt = tiny("mvitv1_b_16x4", drop_path=0.3, checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 4, 64, 64)
    grads = []
    for model in (plain, ckpt):
        torch.manual_seed(1)  # same drop-path draws
        model(x).square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        assert torch.allclose(g, grads[1][name], atol=1e-6), name
