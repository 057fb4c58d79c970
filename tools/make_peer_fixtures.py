"""Write the golden conversion fixtures of ``tests/models/test_convert_peers.py`` from PyTorchVideo's own
builders (its model-zoo hub functions) at tiny widths and depths.

Each fixture ``tests/models/peer_fixtures/<name>.pt`` holds the peer's state dict (random weights,
BatchNorm/LayerNorm statistics and affine terms randomised too, values exactly representable in fp16
and stored so), a fixed float64 input clip, and the peer's float64 logits on it in eval mode. The
tests convert the state dict with ``vidgrid.models.convert`` and compare logits without the peer
installed. Run where PyTorchVideo is installed (its imports need ``fvcore``, ``iopath`` and
``torchvision.ops.RoIAlign`` only for detection heads, which are stubbed here):

    pip install --no-deps pytorchvideo fvcore iopath portalocker tabulate termcolor yacs tqdm
    python tools/make_peer_fixtures.py
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "tests" / "models" / "peer_fixtures"
NUM_CLASSES = 5


def stub_torchvision() -> None:
    """PyTorchVideo imports ``torchvision.ops.RoIAlign`` for its detection heads only; vidgrid never
    depends on torchvision, so a placeholder module satisfies the import."""
    ops = types.ModuleType("torchvision.ops")
    ops.RoIAlign = None  # type: ignore[attr-defined]
    vision = types.ModuleType("torchvision")
    vision.ops = ops  # type: ignore[attr-defined]
    sys.modules.setdefault("torchvision", vision)
    sys.modules.setdefault("torchvision.ops", ops)


def fp16_exact(t: torch.Tensor) -> torch.Tensor:
    return t.half().to(t.dtype)


@torch.no_grad()
def randomise(model: nn.Module, seed: int) -> None:
    """Every float parameter and buffer drawn afresh (norm scales near 1, variances positive)."""
    g = torch.Generator().manual_seed(seed)
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if not t.is_floating_point():
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            value = 0.5 + torch.rand(t.shape, generator=g)
        elif leaf == "weight" and t.ndim == 1:  # BatchNorm / LayerNorm scale
            value = 0.5 + torch.rand(t.shape, generator=g)
        elif t.ndim <= 1 or leaf in ("running_mean",) or "pos_embed" in name or "cls_token" in name:
            value = 0.2 * torch.randn(t.shape, generator=g)
        else:  # fan-in scaled, so activations keep their size through the depth
            fan_in = t[0].numel()
            value = torch.randn(t.shape, generator=g) / fan_in**0.5
        t.copy_(fp16_exact(value))


def peer_models() -> dict[str, tuple[nn.Module, tuple[int, int, int, int, int], bool]]:
    """name -> (PyTorchVideo model, input shape, whether it takes [slow, fast] pathways)."""
    stub_torchvision()
    from pytorchvideo.models import resnet, slowfast
    from pytorchvideo.models.hub import resnet as hub_resnet
    from pytorchvideo.models.hub import slowfast as hub_slowfast
    from pytorchvideo.models.hub import vision_transformers as hub_mvit
    from pytorchvideo.models.x3d import create_x3d

    head = {"model_num_class": NUM_CLASSES, "head_activation": None}
    resnet._MODEL_STAGE_DEPTH[50] = (1, 1, 1, 1)  # tiny depths in the peer's own stage table
    slowfast._MODEL_STAGE_DEPTH[50] = (1, 1, 1, 1)
    models = {
        "slow_r50_8x8": (  # hub.slow_r50's settings; the hub fixes the head pool to 8x7x7, so built directly
            resnet.create_resnet(stem_conv_kernel_size=(1, 7, 7), stem_dim_out=4, head_pool_kernel_size=(4, 1, 1), **head),
            (1, 3, 4, 32, 32), False,
        ),
        "c2d_r50_8x8": (hub_resnet.c2d_r50(stem_dim_out=4, head_pool_kernel_size=(2, 1, 1), **head), (1, 3, 4, 32, 32), False),
        "slowfast_r50_8x8": (
            hub_slowfast.slowfast_r50(  # β = 1/4 instead of 1/8, so that the Fast pathway keeps a channel
                stem_dim_outs=(4, 1), slowfast_channel_reduction_ratio=(4,), head_pool_kernel_sizes=((2, 1, 1), (8, 1, 1)),
                **head,
            ),
            (1, 3, 8, 32, 32), True,
        ),
    }
    resnet._MODEL_STAGE_DEPTH[50] = (1, 2, 2, 1)  # I3D alternates its temporal kernels within a stage
    models["i3d_r50_8x8"] = (hub_resnet.i3d_r50(stem_dim_out=4, head_pool_kernel_size=(2, 1, 1), **head), (1, 3, 4, 32, 32), False)
    models["x3d_xs"] = (
        create_x3d(input_clip_length=4, input_crop_size=32, width_factor=0.5, depth_factor=0.2, head_dim_out=32, **head),
        (1, 3, 4, 32, 32), False,
    )
    models["mvitv1_b_16x4"] = (
        hub_mvit.mvit_base_16x4(
            spatial_size=32, temporal_size=4, depth=4, patch_embed_dim=8, embed_dim_mul=[[1, 2.0], [2, 2.0], [3, 2.0]],
            atten_head_mul=[[1, 2.0], [2, 2.0], [3, 2.0]], pool_q_stride_size=[[1, 1, 2, 2], [2, 1, 2, 2], [3, 1, 2, 2]],
            head_num_classes=NUM_CLASSES,
        ),
        (1, 3, 4, 32, 32), False,
    )
    return models


def pack(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """The state dict as key names, shapes and one flat fp16 tensor (a file of hundreds of small
    tensors is mostly per-tensor overhead). Integer buffers (BN's ``num_batches_tracked``) are left
    out: they do not change eval-mode outputs."""
    floats = {k: v for k, v in state.items() if v.is_floating_point()}
    return {
        "names": list(floats), "shapes": [list(v.shape) for v in floats.values()],
        "flat": torch.cat([v.reshape(-1).half() for v in floats.values()]),
    }


def slow_frames(x: torch.Tensor, alpha: int) -> torch.Tensor:
    """PyTorchVideo's ``PackPathway``: the Slow pathway's T/α frames at ``linspace(0, T-1, T/α)``."""
    index = torch.linspace(0, x.shape[2] - 1, x.shape[2] // alpha).long()
    return x.index_select(2, index)


@torch.no_grad()
def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (name, (model, shape, two_pathways)) in enumerate(peer_models().items()):
        randomise(model, seed)
        model = model.double().eval()
        x = fp16_exact(torch.randn(shape, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64))
        logits = model([slow_frames(x, 4), x] if two_pathways else x)
        fixture = {"peer": "pytorchvideo", "model": name, **pack(model.state_dict()), "input": x.half(), "logits": logits}
        torch.save(fixture, OUT / f"{name}.pt")
        size = (OUT / f"{name}.pt").stat().st_size
        print(f"{name}: {len(fixture['names'])} tensors, logits {tuple(logits.shape)}, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
