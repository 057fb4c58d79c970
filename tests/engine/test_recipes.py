"""Every packaged recipe loads, builds its multigrid schedule, and carries the seeds' numbers."""

import pytest

from vidgrid.config import list_recipes, load_config
from vidgrid.engine.build import build_model, check_shapes
from vidgrid.models import list_models
from vidgrid.models.mvit import MViT
from vidgrid.engine.optim import lr_at, scaled_lr
from vidgrid.multigrid.schedule import schedule_from_config


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_loads_and_schedules(name):
    cfg = load_config(name)
    schedule = schedule_from_config(cfg)
    assert schedule.total_epochs >= cfg.train.epochs
    assert schedule.lr_factor(0.0) > 0
    assert cfg.model.name in list_models()
    # every clip shape of the schedule fits the model (MViT-B takes ~10 s to build: its class
    # attributes say the same)
    model = MViT if cfg.model.name.startswith("mvit") else build_model(cfg, num_classes=10)
    check_shapes(model, schedule.shapes, model_name=cfg.model.name)


def test_x3d_s_recipe_follows_the_supplement():
    cfg = load_config("x3d_s_kinetics")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.reference_batch) == ("sgd", 1.6, 1024)
    assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.model.dropout) == (0.9, 5e-5, 0.5)
    assert (cfg.data.frames, cfg.data.sampling_rate, cfg.data.crop) == (13, 6, 160)
    assert cfg.schedule.policy == "cosine" and cfg.train.epochs == 256
    # 8k warm-up iterations at batch 1024 over ~240k videos
    assert cfg.schedule.warmup_epochs == pytest.approx(8000 * 1024 / 240_000, abs=0.01)
    assert scaled_lr(cfg.optim.lr, 64, cfg.optim.reference_batch) == pytest.approx(0.1)


def test_mvitv2_b_recipe_follows_seed_001():
    cfg = load_config("mvitv2_b_kinetics")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adamw", 2e-4, 0.05)
    schedule = schedule_from_config(cfg)
    first = lr_at(0.0, base_lr=cfg.optim.lr, warmup_share=cfg.schedule.warmup_epochs / cfg.train.epochs,
                  warmup_start_factor=cfg.schedule.warmup_start_factor, lr_factor=schedule.lr_factor,
                  progress=schedule.progress)
    assert first == pytest.approx(2e-6)
    assert cfg.schedule.warmup_epochs == 10 and cfg.schedule.policy == "cosine"
    assert (cfg.data.frames, cfg.data.sampling_rate, cfg.data.min_short, cfg.data.max_short) == (32, 3, 256, 320)
    assert (cfg.train.mixup_alpha, cfg.train.cutmix_alpha, cfg.data.rand_augment) == (0.8, 1.0, True)
    assert (cfg.eval.clips, cfg.eval.crops, cfg.eval.short_side) == (3, 3, 256)


def test_ssv2_recipe_has_no_flip_and_segment_sampling():
    cfg = load_config("ssv2_slowfast_r50")
    assert cfg.data.flip is False and cfg.data.temporal_sampling == "segment"
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.schedule.steps) == (0.03, 1e-6, [0, 14, 18])
