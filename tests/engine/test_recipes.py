"""Every packaged recipe loads, builds its multigrid schedule, and carries the seeds' numbers."""

import pytest
import torch

from vidgrid.config import list_recipes, load_config
from vidgrid.engine.build import build_model, check_shapes
from vidgrid.models import list_models
from vidgrid.models.mvit import MViT
from vidgrid.engine.optim import lr_at, scaled_lr
from vidgrid.multigrid.schedule import schedule_from_config
from vidgrid.types import ClipShape


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


def test_mvitv2_b_recipe_follows_the_multitrain_supplement():
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


def test_mvitv2_b_recipe_uses_separate_absolute_embeddings_only():
    """MultiTrain supplement §1 and Fig. 1 caption: no decomposed relative position embedding."""
    cfg = load_config("mvitv2_b_kinetics")
    assert cfg.model.options == {"rel_pos": False, "abs_pos": True}
    with torch.device("meta"):
        model = build_model(cfg, num_classes=400)
    assert (model.cfg.rel_pos, model.cfg.abs_pos) == (False, True)
    assert not any("rel_pos" in k for k in model.state_dict())
    assert {"pos_embed.pos_embed_spatial", "pos_embed.pos_embed_temporal"} <= set(model.state_dict())


def test_x3d_recipe_tests_with_10_centre_views():
    """X3D supplement Fig. A.1 / Table A.1: K-center testing with K = 10 clips, one centre crop each."""
    cfg = load_config("x3d_s_kinetics")
    assert (cfg.eval.clips, cfg.eval.crops, cfg.eval.crop, cfg.eval.short_side) == (10, 1, 182, 182)


def test_charades_recipe_follows_the_x3d_supplement():
    """X3D supplement §A.2: 24k iterations at batch 16, LR 0.02 with 10x steps, wd 1e-5, stride x2."""
    cfg, kinetics = load_config("charades_x3d_s"), load_config("x3d_s_kinetics")
    assert cfg.data.format == "charades" and cfg.model.name == "x3d_s"
    assert (cfg.train.batch_size, cfg.optim.lr, cfg.optim.reference_batch, cfg.optim.weight_decay) == (16, 0.02, 16, 1e-5)
    assert cfg.train.epochs == round(24_000 * 16 / 7_985)
    assert cfg.schedule.policy == "step" and cfg.schedule.lrs == [1.0, 0.1, 0.01]
    assert cfg.data.sampling_rate == 2 * kinetics.data.sampling_rate and cfg.data.frames == kinetics.data.frames
    assert (cfg.model.dropout, cfg.optim.momentum, cfg.multigrid.bn_base_size) == (0.5, 0.9, 8)


def test_one_gpu_i3d_recipe_follows_the_multigrid_case_study():
    """Multigrid paper §5: 1,200k iterations of 8 clips (~40 epochs), LR 0.00125 /10 at 600k and 1,000k."""
    cfg = load_config("i3d_r50_1gpu")
    assert (cfg.model.name, cfg.train.batch_size, cfg.optim.lr, cfg.optim.reference_batch) == ("i3d_r50_8x8", 8, 0.00125, 8)
    assert cfg.train.epochs == 1_200_000 * 8 // 240_000
    assert cfg.schedule.steps == [0, 600_000 * 8 // 240_000, 1_000_000 * 8 // 240_000]
    assert (cfg.data.frames, cfg.data.sampling_rate, cfg.model.dropout) == (8, 8, 0.0)
    assert cfg.data.min_short == cfg.data.max_short  # random scaling off
    assert cfg.schedule.warmup_epochs == 0


def test_i3d_nl_recipe_follows_the_multigrid_paper():
    """Multigrid paper §4.4: 16x4 clips, 100k iterations at batch 256, LR 0.04 /10 at 37.5k and 75k."""
    cfg = load_config("i3d_nl_r50_kinetics")
    assert (cfg.data.frames, cfg.data.sampling_rate) == (16, 4)
    assert (cfg.train.batch_size, cfg.optim.lr, cfg.optim.reference_batch) == (256, 0.04, 256)
    assert cfg.train.epochs == 100_000 * 256 // 240_000
    assert cfg.schedule.steps == [0, 37_500 * 256 // 240_000, 75_000 * 256 // 240_000]
    assert cfg.schedule.warmup_epochs == 0 and "nonlocal_form" not in cfg.model.options
    with torch.device("meta"):
        model = build_model(cfg, num_classes=400)
    assert {b.form for b in model.res4.nonlocal_blocks.values()} == {"dot_product"}


@pytest.mark.parametrize("name, frames, stride, short", [("ava_x3d_m", 16, 5, 224), ("ava_slowfast_r50", 32, 2, 256)])
def test_ava_recipes_follow_the_x3d_supplement(name, frames, stride, short):
    cfg = load_config(name)
    assert (cfg.task.name, cfg.data.format, cfg.model.pretrained != "") == ("detection", "ava", True)
    assert (cfg.detection.train_iou, cfg.detection.proposal_score, cfg.optim.weight_decay) == (0.9, 0.8, 1e-7)
    assert cfg.schedule.policy == "step" and cfg.schedule.lrs == [1.0, 0.1, 0.01] and cfg.train.epochs == 68
    # 1k of 14k iterations of warm-up
    assert cfg.schedule.warmup_epochs / cfg.train.epochs == pytest.approx(1 / 14, abs=1e-3)
    assert (cfg.data.frames, cfg.data.sampling_rate, cfg.data.crop) == (frames, stride, 224)
    assert (cfg.eval.clips, cfg.eval.crops, cfg.eval.short_side) == (1, 0, short)


def test_demo_detect_recipe_trains_the_detection_task_on_synthetic_data():
    cfg = load_config("demo_detect")
    assert (cfg.task.name, cfg.data.format, cfg.eval.crops) == ("detection", "ava", 0)


def test_slowfast_recipes_train_in_bf16_channels_last_and_x3d_in_fp32_channels_first():
    """The fastest variant of each family in the H200 figures (benchmarks/results/gpu_suite_h200_*.md)."""
    for name in ("slowfast_r50_multigrid", "ssv2_slowfast_r50"):
        cfg = load_config(name)
        assert (cfg.train.precision, cfg.model.channels_last) == ("bf16", True), name
    cfg = load_config("x3d_s_kinetics")
    assert (cfg.train.precision, cfg.model.channels_last) == ("fp32", False)


def test_demo_recipe_trains_its_base_shape_at_the_full_lr():
    """Multigrid paper Appendix A.1: under a cosine the larger (later) shapes train at small LRs. The
    demo's step LR keeps its first base-shape epochs at the full LR and ends at a tenth of it."""
    cfg = load_config("demo")
    schedule = schedule_from_config(cfg)
    base = [seg for seg in schedule.segments if seg.shape == ClipShape(cfg.data.frames, cfg.data.crop)]
    assert cfg.schedule.policy == "step"
    assert schedule.lr_factor(base[0].start_epoch) == pytest.approx(1.0)
    assert schedule.lr_factor(schedule.total_epochs - 0.5) == pytest.approx(0.1)
    baseline = schedule_from_config(load_config("demo", ["multigrid.enabled=false"]))
    assert baseline.lr_factor(0.0) == 1.0 and baseline.lr_factor(baseline.total_epochs - 0.5) == pytest.approx(0.1)


def test_demo_recipe_spends_the_coarse_shapes_on_steps_not_batch():
    """The demo caps every step at 4x its base batch: the paper's long-cycle epochs, 1.4x the steps."""
    capped = schedule_from_config(load_config("demo"))
    eq1 = schedule_from_config(load_config("demo", ["multigrid.max_batch_factor=0"]))
    assert max(b for seg in capped.segments for b in seg.global_batches) == 32
    assert max(b for seg in eq1.segments for b in seg.global_batches) == 128
    assert [(s.start_epoch, s.end_epoch, s.shapes) for s in capped.segments] == [
        (s.start_epoch, s.end_epoch, s.shapes) for s in eq1.segments]
    assert (capped.total_iterations(1000), eq1.total_iterations(1000)) == (2316, 1658)
    assert schedule_from_config(load_config("demo", ["multigrid.enabled=false"])).total_iterations(1000) == 5000
