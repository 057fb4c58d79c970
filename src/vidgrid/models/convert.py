"""Convert PySlowFast and PyTorchVideo checkpoints of X3D, C2D, I3D(-NL), Slow, SlowFast and MViT
into vidgrid checkpoints.

Our layers have the shapes of theirs, so conversion is a key table: every parameter/buffer name of
our model is parsed into (part, pathway, stage, block, layer) and rendered in the source's naming.
The source must hold exactly those keys — missing or unexpected ones are refused with a list, never
loaded with ``strict=False``. One value transform exists: PySlowFast's X3D has a BN after the res2
shortcut convolution (its width does not change there) which PyTorchVideo and vidgrid omit; it is
folded exactly (eval mode) into that convolution and the block's last BN bias.

MViT has its own, smaller table (see the MViT section): our names already are PySlowFast's inside
the blocks, so only a few prefixes are renamed, and PyTorchVideo's separate ``q``, ``k``, ``v``
projections are concatenated into our ``qkv`` (a table entry may name several source tensors).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import torch
import yaml
from torch import Tensor, nn

from vidgrid.errors import CheckpointError, VidgridError
from vidgrid.models.inflate import INFLATABLE, INFLATIONS, fresh_summary, inflate_state_dict
from vidgrid.models.mvit import MViT
from vidgrid.models.registry import create_model, list_models
from vidgrid.models.resnet3d import RESNET3D_CONFIGS, ResNet3D, SlowFast
from vidgrid.models.state_keys import Key, parse_key
from vidgrid.models.x3d import X3D
from vidgrid.torch_file import read_torch_file

Source = Literal["pyslowfast", "pytorchvideo"]
SOURCES: tuple[str, ...] = ("pyslowfast", "pytorchvideo")
_CONVERTIBLE: tuple[str, ...] = ("x3d_", "c2d_", "i3d_", "slow_", "slowfast_", "mvit")
SourceKey = str | tuple[str, ...]
"""The source tensor(s) of one of our keys; several are concatenated along dim 0 (``q, k, v -> qkv``)."""


# Layer names inside one residual block: ours -> (PySlowFast, PyTorchVideo ResNet, PyTorchVideo X3D).
_BLOCK_LAYERS: dict[str, tuple[str, str, str]] = {
    "shortcut": ("branch1", "branch1_conv", "branch1_conv"),
    "shortcut_bn": ("branch1_bn", "branch1_norm", "branch1_norm"),
    "conv_a": ("branch2.a", "branch2.conv_a", "branch2.conv_a"),
    "bn_a": ("branch2.a_bn", "branch2.norm_a", "branch2.norm_a"),
    "conv_b": ("branch2.b", "branch2.conv_b", "branch2.conv_b"),
    "bn_b": ("branch2.b_bn", "branch2.norm_b", "branch2.norm_b.0"),
    "se.fc1": ("branch2.se.fc1", "", "branch2.norm_b.1.block.0"),
    "se.fc2": ("branch2.se.fc2", "", "branch2.norm_b.1.block.2"),
    "conv_c": ("branch2.c", "branch2.conv_c", "branch2.conv_c"),
    "bn_c": ("branch2.c_bn", "branch2.norm_c", "branch2.norm_c"),
}
# Stem layers: ours -> (PySlowFast, PyTorchVideo). PyTorchVideo's X3D stem calls its spatial conv
# ``conv_t`` and its temporal conv ``conv_xy``; the shapes decide.
_STEM_LAYERS: dict[str, tuple[str, str]] = {
    "conv": ("conv", "conv"),
    "bn": ("bn", "norm"),
    "conv_xy": ("conv_xy", "conv.conv_t"),
    "conv_t": ("conv", "conv.conv_xy"),
}
_FUSE_LAYERS: dict[str, tuple[str, str]] = {"conv": ("conv_f2s", "conv_fast_to_slow"), "bn": ("bn", "norm")}
# X3D head: ours -> (PySlowFast, PyTorchVideo)
_X3D_HEAD: dict[str, tuple[str, str]] = {
    "conv5": ("head.conv_5", "blocks.5.pool.pre_conv"),
    "conv5_bn": ("head.conv_5_bn", "blocks.5.pool.pre_norm"),
    "lin5": ("head.lin_5", "blocks.5.pool.post_conv"),
    "fc": ("head.projection", "blocks.5.proj"),
}


def pyslowfast_key(key: Key, model: nn.Module) -> str:
    """Render a parsed key in PySlowFast's naming (``s3.pathway0_res1.branch2.a.weight``)."""
    if key.part == "stem":
        name = f"s1.pathway{key.pathway}_stem.{_STEM_LAYERS[key.layer][0]}"
    elif key.part == "block":
        name = f"s{key.stage}.pathway{key.pathway}_res{key.index}.{_BLOCK_LAYERS[key.layer][0]}"
    elif key.part == "nonlocal":
        name = f"s{key.stage}.pathway{key.pathway}_nonlocal{key.index}.{key.layer}"
    elif key.part == "fuse":
        name = f"s{key.stage + 1}_fuse.{_FUSE_LAYERS[key.layer][0]}"
    elif isinstance(model, X3D):
        name = _X3D_HEAD[key.layer][0]
    else:
        name = {"fc": "head.projection"}[key.layer]
    return f"{name}.{key.param}"


def pytorchvideo_key(key: Key, model: nn.Module) -> str:
    """Render a parsed key in PyTorchVideo's naming (``blocks.2.res_blocks.1.branch2.conv_a.weight``).

    Its networks are a flat ``blocks`` list: stem, the four stages (with a parameterless pool block
    after the first one in C2D/I3D, and a pool-and-concatenate block before the SlowFast head), head."""
    multipath = isinstance(model, SlowFast)
    pooled = isinstance(model, ResNet3D) and model.temporal_pool
    if key.part == "nonlocal":
        raise CheckpointError("PyTorchVideo has no non-local models; convert I3D-NL from a PySlowFast checkpoint")
    if key.part == "stem":
        prefix = f"blocks.0.multipathway_blocks.{key.pathway}" if multipath else "blocks.0"
        name = f"{prefix}.{_STEM_LAYERS[key.layer][1]}"
    elif key.part == "block":
        column = 2 if isinstance(model, X3D) else 1
        block = key.stage - 1 + int(pooled and key.stage > 2)
        path = f".multipathway_blocks.{key.pathway}" if multipath else ""
        name = f"blocks.{block}{path}.res_blocks.{key.index}.{_BLOCK_LAYERS[key.layer][column]}"
    elif key.part == "fuse":
        name = f"blocks.{key.stage}.multipathway_fusion.{_FUSE_LAYERS[key.layer][1]}"
    elif isinstance(model, X3D):
        name = _X3D_HEAD[key.layer][1]
    else:
        name = {"fc": f"blocks.{6 if (pooled or multipath) else 5}.proj"}[key.layer]
    return f"{name}.{key.param}"


# ----------------------------------------------------------------------------------------------
# MViT (PySlowFast ``MViT``; PyTorchVideo ``create_multiscale_vision_transformers``)
# ----------------------------------------------------------------------------------------------

# Prefix renames, ours -> (PySlowFast, PyTorchVideo); every other key (the blocks: norm1, attn.*,
# rel_pos_t/h/w, pool_q/k/v, norm_q/k/v, proj, norm2, mlp.fc1/fc2) is the same in all three.
_MVIT_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("cls_token", "cls_token", "cls_positional_encoding.cls_token"),
    ("patch_embed.", "patch_embed.proj.", "patch_embed.patch_model."),
    ("pos_embed.", "", "cls_positional_encoding."),
    ("norm.", "norm.", "norm_embed."),
    ("head.fc.", "head.projection.", "head.proj."),
)
_MVIT_QKV = re.compile(r"(?P<attn>blocks\.\d+\.attn\.)qkv\.(?P<param>weight|bias)")
_MVIT_SEPARATE_QKV = re.compile(r"(?P<attn>blocks\.\d+\.attn\.)q\.(?P<param>weight|bias)")


def mvit_key(key: str, model: MViT, source: Source) -> SourceKey:
    """Render one of our MViT keys in the source's naming.

    PySlowFast (``SEPARATE_QKV`` off, as in its Kinetics configs) has one ``qkv`` projection like ours
    (separate ones are stacked first, :func:`stack_separate_qkv`); PyTorchVideo builds separate ``q``,
    ``k``, ``v`` (its default, used by its model zoo), which stack in that order into ``qkv``.
    PyTorchVideo has MViTv1 only."""
    if source == "pytorchvideo" and model.cfg.version == 2:
        raise CheckpointError("PyTorchVideo has no MViTv2 models; convert MViTv2 from a PySlowFast checkpoint")
    column = 0 if source == "pyslowfast" else 1
    for prefix, *renamed in _MVIT_PREFIXES:
        if key.startswith(prefix):
            return renamed[column] + key[len(prefix):]
    m = _MVIT_QKV.fullmatch(key)
    if m and source == "pytorchvideo":
        return tuple(f"{m['attn']}{name}.{m['param']}" for name in ("q", "k", "v"))
    return key


def key_table(model: nn.Module, source: Source) -> dict[str, SourceKey]:
    """Our state-dict key -> the source's key(s), for every entry of ``model.state_dict()``."""
    if isinstance(model, MViT):
        return {k: mvit_key(k, model, source) for k in model.state_dict()}
    render = pyslowfast_key if source == "pyslowfast" else pytorchvideo_key
    return {k: render(parse_key(k), model) for k in model.state_dict()}


def _names(theirs: SourceKey) -> tuple[str, ...]:
    return theirs if isinstance(theirs, tuple) else (theirs,)


def _part_shape(shape: torch.Size, parts: int) -> torch.Size:
    """Shape of each of ``parts`` source tensors stacked along dim 0 into a tensor of ``shape``."""
    return shape if parts == 1 else torch.Size([shape[0] // parts, *shape[1:]])


def _gather(src: dict[str, Tensor], theirs: SourceKey) -> Tensor:
    names = _names(theirs)
    return src[names[0]].clone() if len(names) == 1 else torch.cat([src[name] for name in names])


def _optional(our_key: str) -> bool:
    """Entries a source may omit (older checkpoints predate BN's ``num_batches_tracked``)."""
    return our_key.endswith("num_batches_tracked")


_X3D_FOLD_PREFIX = "s2.pathway0_res0.branch1_bn."


def fold_shortcut_bn(src: dict[str, Tensor], *, conv_key: str, bn_prefix: str, bias_key: str) -> None:
    """Fold an inference-mode BN that follows a bias-free shortcut conv into that conv's weight and
    (its constant term) into ``bias_key``, the bias of the BN that ends the residual branch: the block
    output ``shortcut + branch`` is unchanged. Edits ``src`` in place and removes the BN entries."""
    bn = {name: src.pop(bn_prefix + name) for name in ("weight", "bias", "running_mean", "running_var")}
    src.pop(bn_prefix + "num_batches_tracked", None)
    scale = bn["weight"] / torch.sqrt(bn["running_var"] + 1e-5)  # BatchNorm3d eps
    src[conv_key] = src[conv_key] * scale.view(-1, 1, 1, 1, 1)
    src[bias_key] = src[bias_key] + bn["bias"] - bn["running_mean"] * scale


def stack_separate_qkv(src: dict[str, Tensor]) -> None:
    """Replace PySlowFast's separate ``attn.q/k/v`` projections (``SEPARATE_QKV``, and MViTv1-era
    releases) by the ``attn.qkv`` they stack into, in place. With pooling after the projections
    (``POOL_FIRST`` off, the default) separate and stacked projections compute the same. A
    ``POOL_FIRST`` checkpoint has the same tensors wherever a block keeps its width, so its keys cannot
    tell it apart; where the width changes its pooling shapes differ and conversion refuses them."""
    for key in [k for k in src if _MVIT_SEPARATE_QKV.fullmatch(k)]:
        m = _MVIT_SEPARATE_QKV.fullmatch(key)
        parts = [f"{m['attn']}{name}.{m['param']}" for name in ("q", "k", "v")]
        if all(p in src for p in parts):
            src[f"{m['attn']}qkv.{m['param']}"] = torch.cat([src.pop(p) for p in parts])


def convert_state_dict(src: dict[str, Tensor], model: nn.Module, source: Source) -> dict[str, Tensor]:
    """Map a source state dict onto ``model``'s keys; refuses missing, unexpected or misshapen entries
    with one line listing them."""
    table = key_table(model, source)
    src = dict(src)
    if isinstance(model, X3D) and source == "pyslowfast" and _X3D_FOLD_PREFIX + "weight" in src:
        fold_shortcut_bn(
            src, conv_key="s2.pathway0_res0.branch1.weight", bn_prefix=_X3D_FOLD_PREFIX,
            bias_key="s2.pathway0_res0.branch2.c_bn.bias",
        )
    if isinstance(model, MViT) and source == "pyslowfast":
        stack_separate_qkv(src)
    ours = model.state_dict()
    # (our key, source name, the shape that source tensor must have): a key made of n stacked
    # source tensors expects each to hold 1/n of its rows
    parts = [
        (k, name, _part_shape(ours[k].shape, len(_names(theirs))))
        for k, theirs in table.items()
        for name in _names(theirs)
    ]
    missing = [name for k, name, _ in parts if name not in src and not _optional(k)]
    unexpected = sorted(set(src) - {name for _, name, _ in parts})
    wrong = [
        f"{name} {tuple(src[name].shape)} (expected {tuple(shape)})"
        for _, name, shape in parts
        if name in src and src[name].shape != shape
    ]
    problems = [
        f"{label} ({len(items)}): {_preview(items)}"
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong))
        if items
    ]
    if problems:
        raise CheckpointError("; ".join(problems))
    return {
        k: _gather(src, theirs) if _names(theirs)[0] in src else ours[k]
        for k, theirs in table.items()
    }


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def load_source(path: Path) -> tuple[dict[str, Tensor], dict]:
    """A PySlowFast/PyTorchVideo checkpoint's weights: ``model_state`` if present, else the file
    itself when it is a plain state dict (loaded with ``weights_only=True``); and the config a
    PySlowFast checkpoint saves under ``cfg`` (a YAML dump; ``{}`` when absent)."""
    obj = read_torch_file(path)
    state = obj.get("model_state", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (or one under 'model_state')")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        saved = yaml.safe_load(obj["cfg"]) if isinstance(obj.get("cfg"), str) else None
    except yaml.YAMLError:
        saved = None
    return state, saved if isinstance(saved, dict) else {}


def source_options(saved_cfg: dict, model_name: str) -> dict[str, str]:
    """Builder options fixed by the source's saved config where they differ from our variant: the
    non-local pairwise function (PySlowFast ``NONLOCAL.INSTANTIATION``, default ``dot_product`` in
    PySlowFast as in ours). Parameter-free choices like this one cannot be read from the weights."""
    variant = RESNET3D_CONFIGS.get(model_name)
    if variant is None or not any(variant.nonlocal_blocks):
        return {}
    form = (saved_cfg.get("NONLOCAL") or {}).get("INSTANTIATION", "dot_product")
    return {} if form == "dot_product" else {"nonlocal_form": str(form)}


# Small sizes so that finding the classifier's key does not build a full network.
_TINY: dict[str, dict[str, object]] = {
    "x3d": {"width_factor": 0.5, "depth_factor": 0.2},
    "resnet": {"width": 8, "stage_depths": (1, 1, 1, 1)},
    "mvit": {"embed_dim": 8, "depths": (1, 1, 1, 1)},
}


def _probe(model_name: str) -> nn.Module:
    """A tiny instance of ``model_name`` with the same key structure around the head."""
    family = next((f for f in ("x3d", "mvit") if model_name.startswith(f)), "resnet")
    return create_model(model_name, num_classes=1, **_TINY[family])


def convert_command(
    src: Path, dst: Path, *, source: str, model: str, classes: list[str] | None = None, inflation: str = "mean"
) -> int:
    """``vidgrid convert SRC DST --from pyslowfast|pytorchvideo|resnet2d --model NAME [--classes FILE]
    [--inflate mean|center]``: write a vidgrid checkpoint ``{"model": state_dict, "model_name": NAME,
    "num_classes": N, "converted_from": ...}`` plus ``"classes"`` (index = label) when the class names
    are given, which ``predict`` and ``eval`` need, and ``"model_options"`` (builder options,
    :func:`source_options`) where the source's differ from ours. ``resnet2d`` inflates a 2-D ResNet
    (:mod:`vidgrid.models.inflate`)."""
    if source not in (*SOURCES, "resnet2d"):
        raise VidgridError(f"--from: expected one of {', '.join(SOURCES)}, resnet2d, got '{source}'")
    if model not in list_models():
        raise VidgridError(f"--model: unknown model '{model}' (valid: {', '.join(list_models())})")
    convertible = INFLATABLE if source == "resnet2d" else _CONVERTIBLE
    if not model.startswith(convertible):
        raise VidgridError(f"--model {model}: --from {source} supports {', '.join(m + '*' for m in convertible)} only")
    if inflation not in INFLATIONS:
        raise VidgridError(f"--inflate: expected one of {', '.join(INFLATIONS)}, got '{inflation}'")
    state, saved_cfg = load_source(src)
    options = source_options(saved_cfg, model) if source == "pyslowfast" else {}
    if source == "resnet2d":
        classifier = "fc.weight"
    else:
        classifier = _names(key_table(_probe(model), source)["head.fc.weight"])[0]  # type: ignore[arg-type]
    if classifier not in state:
        raise CheckpointError(
            f"{src}: no classifier weight '{classifier}' for {model} in {source} layout (wrong --from or --model?)"
        )
    num_classes = int(state[classifier].shape[0])
    if classes is not None and len(classes) != num_classes:
        raise VidgridError(f"--classes: {len(classes)} class names, but {src} has a classifier of {num_classes} classes")
    net = create_model(model, num_classes=num_classes, **options)
    converted_from = {"source": source, "file": str(src)}
    try:
        if source == "resnet2d":
            weights, fresh = inflate_state_dict(state, net, inflation)  # type: ignore[arg-type]
            converted_from["inflation"] = inflation
        else:
            weights, fresh = convert_state_dict(state, net, source), []  # type: ignore[arg-type]
    except CheckpointError as exc:
        raise CheckpointError(f"{src} does not match {model} in {source} layout: {exc}") from None
    net.load_state_dict(weights)  # strict: the tables cover every key
    ckpt = {
        "model": net.state_dict(),
        "model_name": model,
        "num_classes": num_classes,
        "converted_from": converted_from,
        **({"classes": list(classes)} if classes is not None else {}),
        **({"model_options": options} if options else {}),
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, dst)
    extra = "".join(f", {k}={v}" for k, v in options.items())
    print(f"converted {src} ({source}, {len(state)} tensors) -> {dst} ({model}{extra}, {num_classes} classes)")
    if source == "resnet2d":
        print(f"inflated ({inflation}); freshly initialised: {fresh_summary(fresh)}")
    return 0
