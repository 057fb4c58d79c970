"""The 3-D ResNet family: published sizes and costs, temporal kernels, SlowFast lateral fusion."""

from __future__ import annotations

import pytest
import torch

from vidgrid.errors import ModelError
from vidgrid.models.resnet3d import SLOWFAST_CONFIGS, NonLocal, slow_frame_indices

# name: (parameters with 400 classes: exact int or the reference table's rounding, GMACs at 224², at 256²)
REFERENCE = {
    "c2d_r50_8x8": (24.33e6, 19.5, 25.5),
    "i3d_r50_8x8": (28_043_472, 28.4, 37.1),
    "slow_r50_8x8": (32.45e6, 41.7, 54.5),
    "slowfast_r50_4x16": (34.48e6, 27.6, 36.1),
    "slowfast_r50_8x8": (34_566_488, 50.3, 65.7),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameters_and_gmacs_match_the_reference(name: str, meta_model, gmacs, assert_params) -> None:
    params, at_224, at_256 = REFERENCE[name]
    model = meta_model(name)
    assert_params(model, params)
    frames = model.default_input[1]
    assert gmacs(model, (3, frames, 224, 224)) == pytest.approx(at_224, rel=0.03)
    assert gmacs(model, (3, frames, 256, 256)) == pytest.approx(at_256, rel=0.03)


def test_depths_and_nonlocal_placement(meta_model) -> None:
    r101 = meta_model("slowfast_r101_8x8")
    assert [len(r101.slow[s].blocks) for s in ("res2", "res3", "res4", "res5")] == [3, 4, 23, 3]
    assert [len(r101.fast[s].blocks) for s in ("res2", "res3", "res4", "res5")] == [3, 4, 23, 3]
    nl = meta_model("i3d_nl_r50_8x8")
    assert sorted(nl.res3.nonlocal_blocks) == ["1", "3"] and sorted(nl.res4.nonlocal_blocks) == ["1", "3", "5"]
    assert not nl.res2.nonlocal_blocks and not nl.res5.nonlocal_blocks
    assert nl.res4.nonlocal_blocks["1"].conv_theta.out_channels == 512  # half of res4's 1024


def test_temporal_kernels(meta_model) -> None:
    i3d = meta_model("i3d_r50_8x8")
    assert i3d.stem.conv.kernel_size == (5, 7, 7)
    kernels = {s: [b.conv_a.kernel_size[0] for b in getattr(i3d, s).blocks] for s in ("res2", "res3", "res4", "res5")}
    assert kernels == {"res2": [3, 3, 3], "res3": [3, 1, 3, 1], "res4": [3, 1, 3, 1, 3, 1], "res5": [1, 3, 1]}
    slow = meta_model("slow_r50_8x8")
    assert [slow.res3.blocks[0].conv_a.kernel_size[0], slow.res4.blocks[0].conv_a.kernel_size[0]] == [1, 3]
    c2d = meta_model("c2d_r50_8x8")
    assert all(m.kernel_size[0] == 1 for m in c2d.modules() if isinstance(m, torch.nn.Conv3d))


@pytest.mark.parametrize("name", sorted(SLOWFAST_CONFIGS))
def test_lateral_fusion_is_a_time_strided_conv_with_twice_the_channels(name: str, meta_model) -> None:
    cfg = SLOWFAST_CONFIGS[name]
    model = meta_model(name)
    assert len(model.fuse) == 4
    for fuse in model.fuse:
        assert fuse.conv.kernel_size == (cfg.fusion_kernel, 1, 1) and fuse.conv.stride == (cfg.alpha, 1, 1)
        assert fuse.conv.out_channels == 2 * fuse.conv.in_channels
    assert [f.conv.in_channels for f in model.fuse] == [8, 32, 64, 128]
    assert model.fast["stem"].conv.kernel_size == (5, 7, 7) and model.slow["stem"].conv.kernel_size == (1, 7, 7)
    assert model.slow["res2"].blocks[0].conv_a.in_channels == 64 + 16


def test_slowfast_derives_the_slow_pathway_from_the_fast_clip(tiny_model) -> None:
    model = tiny_model("slowfast_r50_8x8").eval()
    assert (model.min_frames, model.frames_multiple) == (4, 4)
    assert model.pathway_shapes((3, 32, 224, 224)) == [(3, 8, 224, 224), (3, 32, 224, 224)]
    with torch.no_grad():
        slow, fast = model.forward_features(torch.randn(1, 3, 16, 64, 64))
    assert slow.shape[2:] == (4, 2, 2) and fast.shape[2:] == (16, 2, 2)
    assert model.head.in_features == slow.shape[1] + fast.shape[1]
    # the Slow pathway sees the peers' linspace(0, T-1, T/α) frames (PackPathway), not every α-th one
    assert slow_frame_indices(32, 4).tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    assert slow_frame_indices(16, 8).tolist() == [0, 15]


def test_temporal_pool_halves_time_in_c2d_and_i3d(tiny_model) -> None:
    for name, frames in (("c2d_r50_8x8", 4), ("i3d_r50_8x8", 4), ("slow_r50_8x8", 8)):
        model = tiny_model(name).eval()
        with torch.no_grad():
            features = model.forward_features(torch.randn(1, 3, 8, 32, 32))
        assert features.shape[2] == frames, name


def test_nonlocal_block_starts_as_identity_and_handles_tiny_maps() -> None:
    block = NonLocal(16, 8, form="dot_product")
    block.zero_init_last()
    block.eval()
    for shape in ((2, 16, 4, 6, 6), (1, 16, 2, 1, 1)):
        x = torch.randn(shape)
        with torch.no_grad():
            assert torch.equal(block(x), x)
    torch.nn.init.ones_(block.bn.weight)
    with torch.no_grad():
        assert not torch.equal(block(x), x)


@pytest.mark.parametrize("form", ["dot_product", "softmax"])
def test_nonlocal_pairwise_function(form: str) -> None:
    """dot product: (θφᵀ / N) g with N pooled positions; softmax: softmax(θφᵀ / √C') g (PySlowFast's)."""
    block = NonLocal(8, 4, form=form).eval()
    torch.nn.init.ones_(block.bn.weight)
    x = torch.randn(2, 8, 2, 4, 4)
    theta = block.conv_theta(x).flatten(2)  # (B, C', THW)
    pooled = block.pool(x)
    phi, g = block.conv_phi(pooled).flatten(2), block.conv_g(pooled).flatten(2)  # (B, C', N)
    affinity = torch.einsum("bci,bcj->bij", theta, phi)
    weights = affinity / phi.shape[2] if form == "dot_product" else torch.softmax(affinity / 2.0, dim=-1)
    y = torch.einsum("bij,bcj->bci", weights, g).reshape(2, 4, 2, 4, 4)
    with torch.no_grad():
        assert torch.allclose(block(x), x + block.bn(block.conv_out(y)), atol=1e-5)


def test_i3d_nl_is_dot_product_by_default_and_softmax_on_request(tiny_model) -> None:
    """Multigrid paper §4.4: "5 (dot product) non-local blocks"."""
    forms = lambda m: {b.form for s in (m.res3, m.res4) for b in s.nonlocal_blocks.values()}  # noqa: E731
    assert forms(tiny_model("i3d_nl_r50_8x8")) == {"dot_product"}
    assert forms(tiny_model("i3d_nl_r50_8x8", nonlocal_form="softmax")) == {"softmax"}
    with pytest.raises(ModelError, match="nonlocal_form 'gaussian'"):
        tiny_model("i3d_nl_r50_8x8", nonlocal_form="gaussian")
