"""Initialise C2D, I3D(-NL), Slow and SlowFast from a 2-D ResNet by inflating its kernels
(multigrid paper §4.4 and Table 2a: "3D convolutions inflated from 2D convolutions following common
practice"; Carreira & Zisserman, CVPR 2017, §2.4).

The 2-D state dict is in the common torchvision / timm layout (``conv1``, ``bn1``,
``layer{1-4}.{i}.conv{1-3}``, ``bn{1-3}``, ``downsample.{0,1}``, ``fc``). A k×h×w kernel of ours takes
the h×w kernel either repeated over time and divided by k (``mean``: a clip of one repeated frame
gives the 2-D activations, away from the temporal borders where zero padding cuts the sum) or
placed at the temporal centre with zeros around it (``center``: every frame is the 2-D network's
until training moves the other taps). Our ResNet, like torchvision's v1.5, strides in the 3×3 conv.

Parts with no 2-D counterpart keep their fresh initialisation and are listed: non-local blocks
(their last BN starts at zero, so they start as identities), SlowFast's Fast pathway and lateral
connections. The Slow pathway's first block of each stage also reads the lateral channels; their
weights start at zero, so the Slow pathway starts as the inflated 2-D network. The classifier is
taken when its shape fits (ImageNet's 1000 classes); fine-tuning re-initialises it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from vidgrid.errors import CheckpointError
from vidgrid.models.state_keys import Key, parse_key

Inflation = Literal["mean", "center"]
INFLATIONS: tuple[str, ...] = ("mean", "center")
INFLATABLE: tuple[str, ...] = ("c2d_", "i3d_", "slow_", "slowfast_")

# Layer names inside one bottleneck: ours -> the 2-D layout's.
_BLOCK_LAYERS: dict[str, str] = {
    "conv_a": "conv1", "bn_a": "bn1", "conv_b": "conv2", "bn_b": "bn2", "conv_c": "conv3", "bn_c": "bn3",
    "shortcut": "downsample.0", "shortcut_bn": "downsample.1",
}


def resnet2d_key(key: Key) -> str | None:
    """The 2-D ResNet key of one of ours, or None where the 2-D network has no counterpart."""
    if key.pathway == 1 or key.part in ("nonlocal", "fuse"):
        return None
    if key.part == "stem":
        return f"{'conv1' if key.layer == 'conv' else 'bn1'}.{key.param}"
    if key.part == "block":
        return f"layer{key.stage - 1}.{key.index}.{_BLOCK_LAYERS[key.layer]}.{key.param}"
    if key.part == "head" and key.layer == "fc":
        return f"fc.{key.param}"
    return None


def inflate_kernel(weight2d: Tensor, shape: torch.Size, mode: Inflation) -> Tensor:
    """(O, I, h, w) -> (O, I', k, h, w) of ``shape``: repeated over k and divided by k (``mean``) or at
    the temporal centre (``center``). Input channels beyond I (lateral ones) are zero."""
    out, width_in, k = shape[0], shape[1], shape[2]
    if weight2d.shape[0] != out or weight2d.shape[1] > width_in or tuple(weight2d.shape[2:]) != tuple(shape[3:]):
        raise ValueError(f"2-D kernel {tuple(weight2d.shape)} does not inflate to {tuple(shape)}")
    kernel = weight2d.new_zeros(shape)
    if mode == "mean":
        kernel[:, : weight2d.shape[1]] = weight2d.unsqueeze(2).expand(-1, -1, k, -1, -1) / k
    else:
        kernel[:, : weight2d.shape[1], k // 2] = weight2d
    return kernel


def inflate_state_dict(
    src: dict[str, Tensor], model: nn.Module, mode: Inflation
) -> tuple[dict[str, Tensor], list[str]]:
    """``model``'s state dict with every 2-D counterpart inflated from ``src``, and the keys left at
    their fresh initialisation. Missing or misshapen 2-D weights are one :class:`CheckpointError`."""
    ours = model.state_dict()
    table = {k: resnet2d_key(parse_key(k)) for k in ours}
    needed = {k: theirs for k, theirs in table.items() if theirs and not k.endswith("num_batches_tracked")}
    missing = [theirs for theirs in needed.values() if theirs not in src]
    if missing:
        raise CheckpointError(f"missing 2-D ResNet keys ({len(missing)}): {', '.join(missing[:6])}")
    state, fresh, wrong = dict(ours), [], []
    for k, theirs in table.items():
        if theirs is None or theirs not in src or (k.startswith("head.") and src[theirs].shape != ours[k].shape):
            fresh.append(k)
            continue
        try:
            value = src[theirs]
            state[k] = inflate_kernel(value, ours[k].shape, mode) if ours[k].ndim == 5 else _same(value, ours[k])
        except ValueError as e:
            wrong.append(f"{theirs}: {e}")
    if wrong:
        raise CheckpointError(f"2-D weights do not fit ({len(wrong)}): {'; '.join(wrong[:3])}")
    return state, [k for k in fresh if not k.endswith("num_batches_tracked")]


def _same(theirs: Tensor, ours: Tensor) -> Tensor:
    if theirs.shape != ours.shape:
        raise ValueError(f"shape {tuple(theirs.shape)}, expected {tuple(ours.shape)}")
    return theirs.clone().to(ours.dtype)


def fresh_summary(fresh: list[str]) -> str:
    """``non-local blocks (50), fast pathway (120)``: the freshly initialised parts, counted."""
    groups: dict[str, int] = {}
    for key in fresh:
        part = parse_key(key)
        name = ("fast pathway" if part.pathway else {"nonlocal": "non-local blocks", "fuse": "lateral connections",
                                                     "head": "classifier"}.get(part.part, "other"))
        groups[name] = groups.get(name, 0) + 1
    return ", ".join(f"{name} ({count} tensors)" for name, count in groups.items()) or "none"
