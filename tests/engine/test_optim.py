"""Parameter groups, linear scaling, warm-up and per-group LR multipliers."""

from functools import partial

import pytest
import torch
from torch import nn

from vidgrid.engine.optim import build_optimizer, clip_grad_norm, lr_at, scaled_lr, set_lr


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv3d(3, 4, 3)
        self.norm = nn.BatchNorm3d(4)
        self.pos_embed = nn.Parameter(torch.zeros(1, 8, 4))
        self.frozen = nn.Parameter(torch.zeros(3, 3), requires_grad=False)
        self.head = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 5))

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}


def _groups(opt):
    return {g["name"]: g for g in opt.param_groups}


def test_param_groups_split_decay_and_backbone():
    model = TinyNet()
    opt = build_optimizer(model, name="sgd", lr=0.4, momentum=0.9, nesterov=True, weight_decay=1e-4, backbone_lr_mult=0.1)
    groups = _groups(opt)
    assert set(groups) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    ids = lambda g: {id(p) for p in g["params"]}  # noqa: E731
    assert ids(groups["backbone"]) == {id(model.stem.weight)}
    assert ids(groups["backbone_no_decay"]) == {id(model.stem.bias), id(model.norm.weight), id(model.norm.bias), id(model.pos_embed)}
    assert ids(groups["head"]) == {id(model.head[1].weight)}
    assert ids(groups["head_no_decay"]) == {id(model.head[0].weight), id(model.head[0].bias), id(model.head[1].bias)}
    assert groups["backbone"]["weight_decay"] == 1e-4 and groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert groups["backbone"]["lr"] == pytest.approx(0.04) and groups["head"]["lr"] == pytest.approx(0.4)
    assert all(id(model.frozen) not in ids(g) for g in groups.values())
    assert opt.defaults["nesterov"] is True


def test_adamw_and_wrapped_model_names():
    model = nn.Sequential()  # names get a "module." prefix like DistributedDataParallel's
    model.module = TinyNet()
    opt = build_optimizer(model, name="adamw", lr=2e-4, betas=(0.9, 0.99), weight_decay=0.05)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.99)
    groups = _groups(opt)
    assert {id(model.module.pos_embed)} <= {id(p) for p in groups["backbone_no_decay"]["params"]}
    assert "head" in groups


def test_set_lr_applies_multipliers():
    opt = build_optimizer(TinyNet(), name="sgd", lr=1.0, weight_decay=0.0, backbone_lr_mult=0.1)
    set_lr(opt, 0.5)
    assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx(
        {"backbone_no_decay": 0.05, "backbone": 0.05, "head": 0.5, "head_no_decay": 0.5}
    )


def test_scaling_and_warmup():
    assert scaled_lr(1.6, 64, 1024) == pytest.approx(0.1)
    assert scaled_lr(0.1, 64, 0) == 0.1
    linear = dict(warmup_share=0.1, warmup_start_factor=0.01, progress=lambda e: e / 100)  # 10 of 100 epochs
    flat = partial(lr_at, base_lr=1.0, lr_factor=lambda e: 1.0, **linear)
    assert [flat(e) for e in (0.0, 5.0, 10.0, 50.0)] == pytest.approx([0.01, 0.505, 1.0, 1.0])
    assert lr_at(3.0, base_lr=1.0, warmup_share=0, warmup_start_factor=0.01, lr_factor=lambda e: 0.7,
                 progress=lambda e: e / 100) == pytest.approx(0.7)
    # MultiTrain supplement: 2e-4 warming up from 2e-6 over 10 epochs, a cosine-like policy factor on top
    assert lr_at(0.0, base_lr=2e-4, lr_factor=lambda e: 1.0, **linear) == pytest.approx(2e-6)
    assert lr_at(20.0, base_lr=2e-4, lr_factor=lambda e: 0.5, **linear) == pytest.approx(1e-4)
    # under the long cycle the warm-up starts at the recipe's LR, not 8× it, and reaches the 8× LR
    multigrid = partial(lr_at, base_lr=0.8, lr_factor=lambda e: 8.0, **{**linear, "warmup_start_factor": 0.0025})
    assert multigrid(0.0) == pytest.approx(0.002)
    assert multigrid(10.0) == pytest.approx(6.4)


def test_clip_grad_norm():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 3.0)  # norm 6
    assert clip_grad_norm([p], 0.0) == pytest.approx(6.0)
    assert clip_grad_norm([p], 1.5) == pytest.approx(6.0)
    assert p.grad.norm().item() == pytest.approx(1.5, rel=1e-4)
