"""Checkpoint conversion: PySlowFast / PyTorchVideo layouts map onto ours by a key table, strictly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidgrid.cli import main
from vidgrid.errors import CheckpointError
from vidgrid.models.convert import convert_command, convert_state_dict, fold_shortcut_bn, key_table, load_source

CASES = [
    ("x3d_s", "pyslowfast"), ("x3d_s", "pytorchvideo"),
    ("i3d_nl_r50_8x8", "pyslowfast"), ("c2d_r50_8x8", "pytorchvideo"), ("slow_r50_8x8", "pytorchvideo"),
    ("slowfast_r50_8x8", "pyslowfast"), ("slowfast_r50_8x8", "pytorchvideo"),
]

# Real names from the two code bases, one per kind of layer (stem, block, SE, fusion, head).
KNOWN_KEYS = {
    ("x3d_s", "pyslowfast"): [
        "s1.pathway0_stem.conv_xy.weight", "s1.pathway0_stem.conv.weight", "s2.pathway0_res0.branch1.weight",
        "s3.pathway0_res0.branch2.se.fc1.bias", "s5.pathway0_res0.branch2.c_bn.running_var",
        "head.conv_5.weight", "head.lin_5.weight", "head.projection.bias",
    ],
    ("x3d_s", "pytorchvideo"): [
        "blocks.0.conv.conv_t.weight", "blocks.0.conv.conv_xy.weight", "blocks.0.norm.weight",
        "blocks.1.res_blocks.0.branch1_conv.weight", "blocks.2.res_blocks.0.branch1_norm.weight",
        "blocks.2.res_blocks.0.branch2.norm_b.0.weight", "blocks.2.res_blocks.0.branch2.norm_b.1.block.2.weight",
        "blocks.5.pool.pre_conv.weight", "blocks.5.pool.pre_norm.running_mean", "blocks.5.pool.post_conv.weight",
        "blocks.5.proj.weight",
    ],
    ("i3d_nl_r50_8x8", "pyslowfast"): [
        "s3.pathway0_nonlocal1.conv_theta.weight", "s4.pathway0_nonlocal1.bn.weight",
        "s2.pathway0_res0.branch1_bn.weight",
    ],
    ("c2d_r50_8x8", "pytorchvideo"): [
        "blocks.0.conv.weight", "blocks.1.res_blocks.0.branch2.conv_a.weight",
        "blocks.3.res_blocks.0.branch1_conv.weight", "blocks.5.res_blocks.0.branch2.norm_c.weight",
        "blocks.6.proj.weight",
    ],
    ("slow_r50_8x8", "pytorchvideo"): ["blocks.4.res_blocks.0.branch2.conv_b.weight", "blocks.5.proj.weight"],
    ("slowfast_r50_8x8", "pyslowfast"): [
        "s1.pathway1_stem.conv.weight", "s1_fuse.conv_f2s.weight", "s4_fuse.bn.running_mean",
        "s5.pathway1_res0.branch2.c.weight", "head.projection.weight",
    ],
    ("slowfast_r50_8x8", "pytorchvideo"): [
        "blocks.0.multipathway_blocks.1.conv.weight", "blocks.0.multipathway_fusion.conv_fast_to_slow.weight",
        "blocks.3.multipathway_fusion.norm.weight", "blocks.4.multipathway_blocks.0.res_blocks.0.branch1_conv.weight",
        "blocks.6.proj.weight",
    ],
}


def _their_state(model, source: str) -> dict[str, torch.Tensor]:
    """The model's own weights, renamed into the source's layout (the key table inverted)."""
    table = key_table(model, source)
    return {table[k]: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name,source", CASES)
def test_convert_round_trip(name: str, source: str, tmp_path, monkeypatch, tiny_model) -> None:
    model = tiny_model(name, num_classes=7)
    for p in model.parameters():  # make every tensor distinct so a swapped key would show
        p.data.normal_()
    theirs = _their_state(model, source)
    assert len(theirs) == len(model.state_dict()), "key table is not one-to-one"
    assert set(KNOWN_KEYS[(name, source)]) <= set(theirs)

    src = tmp_path / "theirs.pyth"
    torch.save({"model_state": theirs, "epoch": 3} if source == "pyslowfast" else theirs, src)
    # convert_command builds the full-size model; use the tiny one with the checkpoint's class count
    monkeypatch.setattr("vidgrid.models.convert.create_model", lambda n, num_classes, **kw: tiny_model(n, num_classes))
    assert convert_command(src, tmp_path / "out" / "ours.pt", source=source, model=name) == 0
    ckpt = torch.load(tmp_path / "out" / "ours.pt", weights_only=True)
    assert ckpt["model_name"] == name and ckpt["num_classes"] == 7
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt["model"][k], v), k


def test_full_size_tables_reach_every_block(meta_model) -> None:
    nl = key_table(meta_model("i3d_nl_r50_8x8"), "pyslowfast")
    assert {"s3.pathway0_nonlocal3.conv_g.bias", "s4.pathway0_nonlocal5.bn.weight"} <= set(nl.values())
    x3d = key_table(meta_model("x3d_s"), "pytorchvideo")
    assert x3d["res4.10.se.fc2.weight"] == "blocks.3.res_blocks.10.branch2.norm_b.1.block.2.weight"
    sf = key_table(meta_model("slowfast_r101_8x8"), "pytorchvideo")
    assert sf["fast.res4.blocks.22.bn_c.bias"] == "blocks.3.multipathway_blocks.1.res_blocks.22.branch2.norm_c.bias"


def test_missing_unexpected_and_misshapen_keys_are_refused_with_a_list(tiny_model) -> None:
    model = tiny_model("slowfast_r50_8x8")
    theirs = _their_state(model, "pyslowfast")
    del theirs["s1_fuse.conv_f2s.weight"]
    theirs["head.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        convert_state_dict(theirs, model, "pyslowfast")
    message = str(err.value)
    assert "missing keys (1): s1_fuse.conv_f2s.weight" in message
    assert "unexpected keys (1): head.extra.weight" in message and "\n" not in message

    theirs = _their_state(model, "pyslowfast")
    theirs["head.projection.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"wrong shapes \(1\): head.projection.weight \(3, 3\)"):
        convert_state_dict(theirs, model, "pyslowfast")
    # the other layout is refused as a whole
    with pytest.raises(CheckpointError, match=r"missing keys \(\d+\): blocks.0"):
        convert_state_dict(theirs, model, "pytorchvideo")


def test_older_checkpoints_without_num_batches_tracked_load(tiny_model) -> None:
    model = tiny_model("c2d_r50_8x8")
    theirs = {k: v for k, v in _their_state(model, "pytorchvideo").items() if not k.endswith("num_batches_tracked")}
    converted = convert_state_dict(theirs, model, "pytorchvideo")
    model.load_state_dict(converted)


def test_pyslowfast_x3d_res2_shortcut_bn_is_folded_exactly() -> None:
    """Output of conv → BN (eval) plus the residual branch equals the folded conv plus the branch."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 3, 8, 8)
    branch = torch.randn(2, 6, 3, 4, 4)
    state = {
        "conv": torch.randn(6, 6, 1, 1, 1),
        "bn.weight": torch.rand(6) + 0.5, "bn.bias": torch.randn(6),
        "bn.running_mean": torch.randn(6), "bn.running_var": torch.rand(6) + 0.5,
        "bn.num_batches_tracked": torch.tensor(5), "c_bn.bias": torch.randn(6),
    }
    shortcut = F.batch_norm(
        F.conv3d(x, state["conv"], stride=(1, 2, 2)), state["bn.running_mean"], state["bn.running_var"],
        state["bn.weight"], state["bn.bias"], training=False, eps=1e-5,
    )
    expected = shortcut + branch + state["c_bn.bias"].view(1, -1, 1, 1, 1)
    folded = dict(state)
    fold_shortcut_bn(folded, conv_key="conv", bn_prefix="bn.", bias_key="c_bn.bias")
    assert set(folded) == {"conv", "c_bn.bias"}
    got = F.conv3d(x, folded["conv"], stride=(1, 2, 2)) + branch + folded["c_bn.bias"].view(1, -1, 1, 1, 1)
    assert torch.allclose(got, expected, atol=1e-5)


def test_pyslowfast_x3d_with_res2_shortcut_bn_converts(tiny_model) -> None:
    model = tiny_model("x3d_s").eval()
    theirs = _their_state(model, "pyslowfast")
    # PySlowFast's X3D has an identity-initialised BN after res2's shortcut conv
    theirs.update({f"s2.pathway0_res0.branch1_bn.{k}": v for k, v in {
        "weight": torch.ones(8), "bias": torch.zeros(8), "running_mean": torch.zeros(8),
        "running_var": torch.full((8,), 1 - 1e-5), "num_batches_tracked": torch.tensor(0)}.items()})
    converted = convert_state_dict(theirs, model, "pyslowfast")
    for k, v in model.state_dict().items():
        assert torch.allclose(converted[k].float(), v.float(), atol=1e-6), k


def test_load_source_and_cli_errors(tmp_path, capsys, tiny_model) -> None:
    model = tiny_model("i3d_r50_8x8")
    theirs = _their_state(model, "pyslowfast")
    path = tmp_path / "ddp.pyth"
    torch.save({"model_state": {f"module.{k}": v for k, v in theirs.items()}}, path)
    assert set(load_source(path)[0]) == set(theirs)
    bad = tmp_path / "bad.pyth"
    torch.save({"model_state": {"a": 1}}, bad)
    with pytest.raises(CheckpointError, match="expected a state dict of tensors"):
        load_source(bad)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_source(tmp_path / "nope.pyth")
    (tmp_path / "text.pyth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="text.pyth: not a readable checkpoint") as refused:
        load_source(tmp_path / "text.pyth")
    assert "weights_only" not in str(refused.value)  # torch's finding, not its advice to unpickle unsafely

    # through the CLI: a mismatch is one 'error:' line and exit code 2, and nothing is written
    assert main(["convert", str(path), str(tmp_path / "x.pt"), "--from", "pyslowfast", "--model", "x3d_s"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "x3d_s" in err
    assert not (tmp_path / "x.pt").exists()
    assert main(["convert", str(path), str(tmp_path / "x.pt"), "--from", "pytorchvideo",
                 "--model", "mvitv2_s_16x4"]) == 2
    assert "PyTorchVideo has no MViTv2 models" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# MViT: PySlowFast (v1 and v2) and PyTorchVideo (v1 only; separate q/k/v projections)
# ----------------------------------------------------------------------------------------------

MVIT_CASES = [
    ("mvitv2_s_16x4", "pyslowfast"), ("mvitv2_b_32x3", "pyslowfast"),
    ("mvitv1_b_16x4", "pyslowfast"), ("mvitv1_b_16x4", "pytorchvideo"),
]
# Real names from slowfast/models/{video_model_builder,attention,stem_helper,head_helper}.py and
# pytorchvideo/{models/vision_transformers,layers/attention,layers/positional_encoding,models/stem}.py
MVIT_KNOWN_KEYS = {
    ("mvitv2_s_16x4", "pyslowfast"): [
        "cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.attn.qkv.weight",
        "blocks.0.attn.rel_pos_t", "blocks.0.attn.rel_pos_h", "blocks.0.attn.rel_pos_w",
        "blocks.0.attn.pool_q.weight", "blocks.0.attn.norm_q.weight", "blocks.1.attn.pool_k.weight",
        "blocks.1.attn.norm_v.bias", "blocks.1.proj.weight", "blocks.3.mlp.fc2.bias", "norm.weight",
        "head.projection.weight", "head.projection.bias",
    ],
    ("mvitv2_b_32x3", "pyslowfast"): ["blocks.0.attn.rel_pos_t", "blocks.1.proj.bias", "head.projection.weight"],
    ("mvitv1_b_16x4", "pyslowfast"): [
        "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class", "blocks.0.proj.weight",
        "blocks.1.attn.pool_q.weight", "blocks.0.attn.pool_v.weight", "blocks.0.attn.qkv.bias",
    ],
    ("mvitv1_b_16x4", "pytorchvideo"): [
        "cls_positional_encoding.cls_token", "cls_positional_encoding.pos_embed_spatial",
        "cls_positional_encoding.pos_embed_temporal", "cls_positional_encoding.pos_embed_class",
        "patch_embed.patch_model.weight", "blocks.0.attn.q.weight", "blocks.0.attn.k.bias", "blocks.0.attn.v.weight",
        "blocks.0.attn.proj.weight", "blocks.1.attn.norm_q.weight", "blocks.0.proj.weight", "norm_embed.weight",
        "head.proj.weight",
    ],
}


def _mvit_their_state(model, source: str) -> dict[str, torch.Tensor]:
    """The key table inverted: an entry naming several source tensors is split along dim 0."""
    theirs = {}
    for k, names in key_table(model, source).items():
        names = names if isinstance(names, tuple) else (names,)
        theirs.update(zip(names, (part.clone() for part in model.state_dict()[k].chunk(len(names)))))
    return theirs


@pytest.mark.parametrize("name,source", MVIT_CASES)
def test_mvit_convert_round_trip(name: str, source: str, tmp_path, monkeypatch, tiny_model) -> None:
    model = tiny_model(name, num_classes=7).eval()
    for p in model.parameters():  # distinct values, so a swapped key would show
        p.data.normal_(std=0.1)
    theirs = _mvit_their_state(model, source)
    assert set(MVIT_KNOWN_KEYS[(name, source)]) <= set(theirs)
    assert not any(k.startswith(("pos_embed.", "head.fc")) for k in theirs)
    if name.startswith("mvitv1"):  # v1 pools the query only where it is strided
        assert not any(k.startswith("blocks.0.attn.pool_q") or "rel_pos" in k for k in theirs)

    src = tmp_path / "theirs.pyth"
    torch.save({"model_state": theirs, "epoch": 3} if source == "pyslowfast" else theirs, src)
    monkeypatch.setattr("vidgrid.models.convert.create_model", lambda n, num_classes, **kw: tiny_model(n, num_classes))
    assert convert_command(src, tmp_path / "ours.pt", source=source, model=name) == 0
    ckpt = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert ckpt["model_name"] == name and ckpt["num_classes"] == 7
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt["model"][k], v), k
    rebuilt = tiny_model(name, num_classes=7).eval()
    rebuilt.load_state_dict(ckpt["model"])
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_pytorchvideo_q_k_v_stack_into_qkv_in_that_order(tiny_model) -> None:
    """With PyTorchVideo's ``k`` zeroed every attention logit is 0: the output must then ignore ``q``
    and depend on ``v`` (it would not if the three were stacked in another order)."""
    model = tiny_model("mvitv1_b_16x4").eval()
    theirs = _mvit_their_state(model, "pytorchvideo")
    for k in [k for k in theirs if ".attn.k." in k]:
        theirs[k] = torch.zeros_like(theirs[k])
    x = torch.randn(1, 3, 4, 32, 32)

    def output(state: dict[str, torch.Tensor]) -> torch.Tensor:
        model.load_state_dict(convert_state_dict(state, model, "pytorchvideo"))
        with torch.no_grad():
            return model(x)

    base = output(theirs)
    assert torch.allclose(output({**theirs, "blocks.1.attn.q.weight": torch.randn(16, 16)}), base, atol=1e-6)
    assert not torch.allclose(output({**theirs, "blocks.1.attn.v.weight": torch.randn(16, 16)}), base, atol=1e-4)


def test_mvit_missing_unexpected_and_refused_layouts(tiny_model, tmp_path) -> None:
    v1 = tiny_model("mvitv1_b_16x4")
    theirs = _mvit_their_state(v1, "pytorchvideo")
    theirs["blocks.0.attn.qkv.weight"] = theirs.pop("blocks.0.attn.k.weight")
    with pytest.raises(CheckpointError) as err:
        convert_state_dict(theirs, v1, "pytorchvideo")
    message = str(err.value)
    assert "missing keys (1): blocks.0.attn.k.weight" in message
    assert "unexpected keys (1): blocks.0.attn.qkv.weight" in message and "\n" not in message

    v2 = tiny_model("mvitv2_s_16x4")
    theirs = _mvit_their_state(v2, "pyslowfast")
    del theirs["blocks.2.attn.rel_pos_t"]
    theirs["pos_embed"] = torch.zeros(1, 5, 8)
    refused = r"missing keys \(1\): blocks.2.attn.rel_pos_t; unexpected keys \(1\): pos_embed$"
    with pytest.raises(CheckpointError, match=refused):
        convert_state_dict(theirs, v2, "pyslowfast")
    theirs = _mvit_their_state(v2, "pyslowfast")
    theirs["blocks.0.attn.rel_pos_h"] = torch.zeros(3, 8)
    with pytest.raises(CheckpointError, match=r"wrong shapes \(1\): blocks.0.attn.rel_pos_h \(3, 8\)"):
        convert_state_dict(theirs, v2, "pyslowfast")
    # PyTorchVideo has no MViTv2
    path = tmp_path / "v2.pyth"
    torch.save(_mvit_their_state(v2, "pyslowfast"), path)
    with pytest.raises(CheckpointError, match="PyTorchVideo has no MViTv2 models"):
        convert_command(path, tmp_path / "x.pt", source="pytorchvideo", model="mvitv2_b_32x3")


@pytest.mark.parametrize("name", ["mvitv1_b_16x4", "mvitv2_s_16x4"])
def test_pyslowfast_separate_qkv_projections_are_stacked(tiny_model, name: str) -> None:
    """SEPARATE_QKV (and MViTv1-era) PySlowFast checkpoints: q, k, v projected before pooling, as ours."""
    model = tiny_model(name)
    theirs = _mvit_their_state(model, "pyslowfast")
    for key in [k for k in theirs if ".attn.qkv." in k]:
        theirs.update(zip((key.replace(".qkv.", f".{n}.") for n in "qkv"), theirs.pop(key).chunk(3)))
    converted = convert_state_dict(theirs, model, "pyslowfast")
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())


def test_mvit_full_size_tables(meta_model) -> None:
    v2 = key_table(meta_model("mvitv2_b_32x3"), "pyslowfast")
    assert v2["blocks.23.attn.rel_pos_w"] == "blocks.23.attn.rel_pos_w" and v2["norm.bias"] == "norm.bias"
    v1 = key_table(meta_model("mvitv1_b_16x4"), "pytorchvideo")
    assert v1["blocks.15.attn.qkv.bias"] == tuple(f"blocks.15.attn.{n}.bias" for n in "qkv")
    assert v1["pos_embed.pos_embed_spatial"] == "cls_positional_encoding.pos_embed_spatial"


@pytest.mark.parametrize("saved,options", [
    (None, {}),
    ("NONLOCAL:\n  INSTANTIATION: dot_product\n", {}),
    ("NONLOCAL:\n  INSTANTIATION: softmax\n", {"nonlocal_form": "softmax"}),
])
def test_pyslowfast_nonlocal_instantiation_is_mapped(saved, options, tmp_path, monkeypatch, tiny_model) -> None:
    """PySlowFast saves its config as YAML under ``cfg``; NONLOCAL.INSTANTIATION picks our non-local form."""
    model = tiny_model("i3d_nl_r50_8x8", num_classes=7)
    torch.save({"model_state": _their_state(model, "pyslowfast"), **({"cfg": saved} if saved else {})}, tmp_path / "nl.pyth")
    built = []  # the builder options of each model conversion creates (its size options left out)

    def create(name, num_classes, **kw):
        built.append({k: v for k, v in kw.items() if k not in ("width", "stage_depths")})
        return tiny_model(name, num_classes, **built[-1])

    monkeypatch.setattr("vidgrid.models.convert.create_model", create)
    assert convert_command(tmp_path / "nl.pyth", tmp_path / "nl.pt", source="pyslowfast", model="i3d_nl_r50_8x8") == 0
    assert torch.load(tmp_path / "nl.pt", weights_only=True).get("model_options", {}) == options
    assert built[-1] == options
