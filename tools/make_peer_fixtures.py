"""Write the golden conversion fixtures of ``tests/models/test_convert_peers.py`` from the peers' own
builders at tiny widths and depths: PyTorchVideo's model-zoo hub functions, and PySlowFast's model
classes built from its config (a source checkout, given with ``--pyslowfast``).

Each fixture ``tests/models/peer_fixtures/<peer>-<name>.pt`` holds the peer's state dict (random weights,
BatchNorm/LayerNorm statistics and affine terms randomised too, values exactly representable in fp16
and stored so), a fixed float64 input clip, and the peer's float64 logits on it in eval mode. The
tests convert the state dict with ``vidgrid.models.convert`` and compare logits without the peer
installed. Run where PyTorchVideo is installed (its imports need ``fvcore``, ``iopath`` and
``torchvision.ops.RoIAlign`` only for detection heads, which are stubbed here):

    pip install --no-deps pytorchvideo fvcore iopath portalocker tabulate termcolor yacs tqdm
    git clone https://github.com/facebookresearch/SlowFast /tmp/SlowFast
    python tools/make_peer_fixtures.py --pyslowfast /tmp/SlowFast

PySlowFast's package ``__init__`` files import its training stack (newer PyTorchVideo, detectron2);
only its model modules are imported here, with placeholders for the detection head's ``ROIAlign``,
``simplejson`` and its distributed helpers.
"""

from __future__ import annotations

import argparse
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


def pytorchvideo_models() -> dict[str, tuple[nn.Module, tuple[int, int, int, int, int], bool]]:
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
            spatial_size=32, temporal_size=4, depth=3, patch_embed_dim=8, embed_dim_mul=[[1, 2.0], [2, 2.0]],
            atten_head_mul=[[1, 2.0], [2, 2.0]], pool_q_stride_size=[[1, 1, 2, 2], [2, 1, 2, 2]],
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


def import_pyslowfast(checkout: Path) -> types.ModuleType:
    """PySlowFast's ``video_model_builder`` from a source checkout, without its package ``__init__``s."""
    def placeholder(name: str, **attrs: object) -> None:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules.setdefault(name, module)

    placeholder("detectron2")
    placeholder("detectron2.layers", ROIAlign=None)
    placeholder("simplejson")
    placeholder("slowfast.utils.distributed", is_master_proc=lambda *a, **k: True, get_world_size=lambda: 1)
    sys.path.insert(0, str(checkout))
    models = types.ModuleType("slowfast.models")
    models.__path__ = [str(checkout / "slowfast" / "models")]  # type: ignore[attr-defined]
    sys.modules["slowfast.models"] = models
    from slowfast.models import video_model_builder

    return video_model_builder


def pyslowfast_models(checkout: Path) -> dict[str, tuple[nn.Module, tuple[int, int, int, int, int], bool, str]]:
    """name -> (PySlowFast model, input shape, two pathways?, its config as the YAML its checkpoints save)."""
    vmb = import_pyslowfast(checkout)
    from slowfast.config.defaults import get_cfg

    def config(arch: str, frames: int, **sections: dict) -> object:
        cfg = get_cfg()
        cfg.MODEL.ARCH, cfg.MODEL.NUM_CLASSES, cfg.MODEL.DROPOUT_RATE = arch, NUM_CLASSES, 0.0
        cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = frames, 32, 32
        cfg.DATA.INPUT_CHANNEL_NUM = [3]
        for section, values in sections.items():
            for key, value in values.items():
                setattr(getattr(cfg, section), key, value)
        return cfg

    nl = {"LOCATION": [[[]], [[1]], [[1]], [[]]], "GROUP": [[1], [1], [1], [1]]}
    resnet = {"WIDTH_PER_GROUP": 4, "NUM_BLOCK_TEMP_KERNEL": [[1], [2], [2], [1]]}
    mvit = {
        "EMBED_DIM": 8, "NUM_HEADS": 1, "DEPTH": 3, "DIM_MUL": [[1, 2.0], [2, 2.0]], "HEAD_MUL": [[1, 2.0], [2, 2.0]],
        "POOL_KVQ_KERNEL": [3, 3, 3], "POOL_KV_STRIDE_ADAPTIVE": [1, 8, 8],
        "POOL_Q_STRIDE": [[0, 1, 1, 1], [1, 1, 2, 2], [2, 1, 2, 2]], "USE_ABS_POS": False,
        "REL_POS_SPATIAL": True, "REL_POS_TEMPORAL": True, "ZERO_DECAY_POS_CLS": False, "DROPPATH_RATE": 0.0,
        "DIM_MUL_IN_ATT": True, "RESIDUAL_POOLING": True, "DROPOUT_RATE": 0.0, "PATCH_KERNEL": [3, 7, 7],
        "PATCH_STRIDE": [2, 4, 4], "PATCH_PADDING": [1, 3, 3], "MLP_RATIO": 4.0, "QKV_BIAS": True, "MODE": "conv",
        "CLS_EMBED_ON": True, "NORM": "layernorm",
    }  # configs/Kinetics/MVITv2_S_16x4.yaml at tiny width and depth
    configs = {
        "x3d_xs": (vmb.X3D, config(  # configs/Kinetics/X3D_XS.yaml at tiny width and depth; PySlowFast rounds
            # γ_w-scaled widths to integers, PyTorchVideo and vidgrid to multiples of 8: with a base width
            # of 16 instead of 12 at γ_w = 0.5 they agree (8/16/32/64), as they do at the released γ_w = 2
            "x3d", 4, X3D={"WIDTH_FACTOR": 0.5, "DEPTH_FACTOR": 0.2, "BOTTLENECK_FACTOR": 2.25, "DIM_C5": 32, "DIM_C1": 16},
            RESNET={"TRANS_FUNC": "x3d_transform", "STRIDE_1X1": False},
        )),
        "i3d_nl_r50_8x8": (vmb.ResNet, config("i3d", 4, RESNET=resnet, NONLOCAL=nl)),
        "i3d_nl_r50_8x8-softmax": (
            vmb.ResNet, config("i3d", 4, RESNET=resnet, NONLOCAL={**nl, "INSTANTIATION": "softmax"}),
        ),
        "slowfast_r50_8x8": (vmb.SlowFast, config(
            "slowfast", 8, DATA={"INPUT_CHANNEL_NUM": [3, 3]},  # β = 1/4, so that the Fast pathway keeps a channel
            RESNET={"WIDTH_PER_GROUP": 4, "NUM_BLOCK_TEMP_KERNEL": [[1, 1]] * 4,
                    "SPATIAL_STRIDES": [[1, 1], [2, 2], [2, 2], [2, 2]], "SPATIAL_DILATIONS": [[1, 1]] * 4},
            NONLOCAL={"LOCATION": [[[], []]] * 4, "GROUP": [[1, 1]] * 4},
            SLOWFAST={"ALPHA": 4, "BETA_INV": 4, "FUSION_KERNEL_SZ": 7},
        )),
        "mvitv2_s_16x4": (vmb.MViT, config("mvit", 4, MVIT=mvit)),
        "mvitv2_s_16x4-separate_qkv": (vmb.MViT, config("mvit", 4, MVIT={**mvit, "SEPARATE_QKV": True})),
    }
    models = {}
    for name, (cls, cfg) in configs.items():
        # tiny depths in the peer's own stage table (I3D-NL needs a second block for its non-local one)
        vmb._MODEL_STAGE_DEPTH[50] = (1, 2, 2, 1) if cfg.MODEL.ARCH == "i3d" else (1, 1, 1, 1)
        model = cls(cfg)
        for module in model.modules():  # logits: PySlowFast's heads apply softmax in eval mode
            if hasattr(module, "act") and isinstance(module.act, (nn.Softmax, nn.Sigmoid)):
                module.act = nn.Identity()
        frames = cfg.DATA.NUM_FRAMES
        models[name] = (model, (1, 3, frames, 32, 32), cfg.MODEL.ARCH == "slowfast", cfg.dump())
    return models


def peer_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The fixed float64 input clip (fp16-exact values): regenerated from its seed by the tests."""
    return fp16_exact(torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))


def slow_frames(x: torch.Tensor, alpha: int) -> torch.Tensor:
    """PyTorchVideo's ``PackPathway``: the Slow pathway's T/α frames at ``linspace(0, T-1, T/α)``."""
    index = torch.linspace(0, x.shape[2] - 1, x.shape[2] // alpha).long()
    return x.index_select(2, index)


@torch.no_grad()
def write_fixture(path: Path, name: str, peer: str, model: nn.Module, shape: tuple[int, ...], two_pathways: bool,
                  seed: int, saved_cfg: str = "", state_of: str = "") -> None:
    """One fixture; with ``state_of`` the weights (drawn from the same seed) are those of that fixture."""
    randomise(model, seed)
    model = model.double().eval()
    x = peer_input(shape, 100 + seed)
    # PySlowFast's models take a list of pathways even with one pathway
    logits = model([slow_frames(x, 4), x] if two_pathways else [x] if peer == "pyslowfast" else x).reshape(shape[0], -1)
    state = {"state_of": state_of} if state_of else pack(model.state_dict())
    fixture = {
        "peer": peer, "model": name.split("-")[0], **state, "input_shape": list(shape), "input_seed": 100 + seed,
        "logits": logits,
    }
    if saved_cfg:
        fixture["cfg"] = saved_cfg
    torch.save(fixture, path)
    print(f"{path.name}: {state_of or str(len(fixture['names'])) + ' tensors'}, logits {tuple(logits.shape)}, {path.stat().st_size / 1024:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyslowfast", type=Path, default=None, help="a PySlowFast source checkout")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (name, (model, shape, two_pathways)) in enumerate(pytorchvideo_models().items()):
        write_fixture(OUT / f"pytorchvideo-{name}.pt", name, "pytorchvideo", model, shape, two_pathways, seed)
    if args.pyslowfast is not None:
        built = pyslowfast_models(args.pyslowfast)
        for seed, (name, (model, shape, two_pathways, saved)) in enumerate(built.items()):
            # a variant (name-variant) of the same architecture takes the base model's weights, stored once
            base = name.split("-")[0]
            shares = base != name and not name.endswith("separate_qkv")
            write_fixture(OUT / f"pyslowfast-{name}.pt", name, "pyslowfast", model, shape, two_pathways,
                          50 + (list(built).index(base) if shares else seed), saved,
                          state_of=f"pyslowfast-{base}" if shares else "")


if __name__ == "__main__":
    main()
