"""The multigrid schedule arithmetic (paper §3.2, Appendix A.1) — pure, no torch."""

import math
import subprocess
import sys

import pytest

from vidgrid.config import load_config
from vidgrid.errors import ConfigError, VidgridError
from vidgrid.multigrid.schedule import (
    build_schedule,
    epoch_plan,
    frame_floor,
    scaled_batch,
    schedule_from_config,
)
from vidgrid.types import ClipShape

KINETICS = 240_000
LONG = [(0.25, 1 / math.sqrt(2)), (0.5, 1 / math.sqrt(2)), (0.5, 1.0), (1.0, 1.0)]
SHORT = [0.5, 1 / math.sqrt(2)]
PAPER = dict(  # SlowFast R50 Kinetics baseline (§4): 32x224², 512 clips, stages at 0/94/154/196 of 239 epochs
    base=ClipShape(32, 224), base_batch=512, epochs=239, stage_starts=[0, 94, 154, 196], stage_lrs=[1, 0.1, 0.01, 0.001]
)


def paper(**multigrid):
    return build_schedule(**PAPER, epoch_factor=1.5, **multigrid)


def reduction(schedule, dataset_size=KINETICS):
    return build_schedule(**PAPER).total_iterations(dataset_size) / schedule.total_iterations(dataset_size)


def test_multigrid_modules_do_not_import_torch():
    code = "import sys, vidgrid.multigrid.schedule, vidgrid.multigrid.sampler; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_paper_recipe_epochs_and_iteration_saving():
    s = paper(long_cycle=LONG, short_cycle=SHORT)
    assert s.total_epochs == 358  # 1.5 × 239 rounded down
    # progress counts iterations: the share done at each segment's end matches the iteration counts
    done = 0
    for seg in s.segments:
        done += s.iterations(seg, KINETICS)
        assert s.progress(seg.end_epoch) == pytest.approx(done / s.total_iterations(KINETICS), abs=2e-3)
    assert (s.progress(0), s.progress(s.total_epochs + 5)) == (0, 1)
    assert 3.3 <= reduction(s) <= 3.6  # the paper: 3.4× fewer iterations


def test_ablations_long_only_and_short_only():
    assert reduction(paper(long_cycle=LONG)) == pytest.approx(2.2, abs=0.07)
    assert reduction(paper(short_cycle=SHORT)) == pytest.approx(1.56, abs=0.03)
    assert paper(long_cycle=LONG).total_epochs == paper(short_cycle=SHORT).total_epochs == 358


def test_long_cycle_shapes_batches_and_lr_multipliers():
    s = paper(long_cycle=LONG, short_cycle=SHORT)
    b = 512
    cycle = [(8 * b, 8, 158), (4 * b, 16, 158), (2 * b, 16, 224), (b, 32, 224)]
    long_cycles = [seg for seg in s.segments if seg.lr_stage < 3][:12]
    assert [(seg.base_batch, seg.shape.frames, seg.shape.crop) for seg in long_cycles] == cycle * 3
    assert [seg.lr_multiplier for seg in long_cycles] == [8, 4, 2, 1] * 3
    assert [seg.lr_stage for seg in long_cycles] == [0] * 4 + [1] * 4 + [2] * 4
    # the fine-tuning stage: base shape, short cycle, no LR scaling
    for seg in s.segments[12:]:
        assert (seg.shape, seg.base_batch, seg.lr_multiplier) == (ClipShape(32, 224), b, 1)


def test_short_cycle_positions_follow_eq1():
    s = paper(long_cycle=LONG, short_cycle=SHORT)
    first, third = s.segments[0], s.segments[2]
    # crops S/2 and S/√2 of the default crop at the long-cycle frames, then the long-cycle shape
    assert [str(x) for x in first.shapes] == ["8x112²", "8x158²", "8x158²"]
    assert first.global_batches == (16 * 512, 8 * 512, 8 * 512)
    assert [x.crop for x in third.shapes] == [112, 158, 224]
    assert third.global_batches == (8 * 512, 4 * 512, 2 * 512)
    assert s.segments[-1].global_batches == (4 * 512, 2 * 512, 512)
    assert s.shapes >= {ClipShape(32, 112), ClipShape(32, 158), ClipShape(32, 224), ClipShape(8, 112)}


def test_equal_iterations_per_long_cycle_shape():
    s = paper(long_cycle=LONG, short_cycle=SHORT)
    for stage in range(3):
        iters = [s.iterations(seg, KINETICS) for seg in s.segments if seg.lr_stage == stage][:4]
        assert max(iters) / min(iters) < 1.1, iters  # equal up to whole-epoch rounding


def test_step_lr_follows_long_cycle_only_and_fine_tuning_halves():
    s = paper(long_cycle=LONG, short_cycle=SHORT)
    for seg in s.segments:
        mid = (seg.start_epoch + seg.end_epoch) / 2
        assert s.lr_factor(mid) == pytest.approx(s.stage_lrs[seg.lr_stage] * seg.lr_multiplier)
    first, second = s.segments[-2:]
    assert (first.lr_stage, second.lr_stage) == (2, 3)
    assert abs(first.epochs - second.epochs) <= 1
    assert s.lr_factor(first.start_epoch) == pytest.approx(0.01)
    assert s.lr_factor(second.start_epoch) == pytest.approx(0.001)
    assert s.lr_factor(0) == pytest.approx(8.0)
    assert s.lr_factor(s.total_epochs) == pytest.approx(0.001)  # past the end: the last segment


def test_segment_at_and_contiguous_segments():
    s = paper(long_cycle=LONG, short_cycle=SHORT)
    assert s.segments[0].start_epoch == 0
    for a, b in zip(s.segments, s.segments[1:]):
        assert a.end_epoch == b.start_epoch and a.epochs > 0
        assert s.segment_at(b.start_epoch) is b
        assert s.segment_at(b.start_epoch - 0.5) is a
    with pytest.raises(ValueError):
        s.segment_at(-1)


def test_baseline_is_one_segment_without_short_cycle():
    s = build_schedule(**PAPER)
    (seg,) = s.segments
    assert (seg.start_epoch, seg.end_epoch, seg.shape) == (0, 239, ClipShape(32, 224))
    assert (seg.base_batch, seg.lr_multiplier, s.progress(119.5)) == (512, 1, 0.5)
    assert seg.global_batches == (512,)
    assert s.total_iterations(KINETICS) == 239 * 469  # every clip once per epoch: 468 full batches + 1
    assert [s.lr_factor(e) for e in (0, 93.9, 94, 154, 196, 238.5)] == pytest.approx([1, 1, 0.1, 0.01, 0.001, 0.001])


def test_short_cycle_only_stretches_the_stages():
    s = paper(short_cycle=SHORT)
    (seg,) = s.segments
    assert seg.global_batches == (2048, 1024, 512) and seg.lr_multiplier == 1
    assert s.stage_starts == (0, round(94 * 358 / 239), round(154 * 358 / 239), round(196 * 358 / 239))
    assert s.lr_factor(s.stage_starts[1]) == pytest.approx(0.1)


def test_cosine_multi_cycle_and_single_cycle():
    multi = build_schedule(**{**PAPER, "stage_lrs": [1] * 4}, policy="cosine", cosine_end=0.01,
                           long_cycle=LONG, short_cycle=SHORT, epoch_factor=1.5)
    assert len(multi.segments) == 13  # 3 long cycles + fine-tuning, no LR halves under cosine
    assert multi.lr_factor(0) == pytest.approx(8.0)
    seg = multi.segments[5]
    progress = multi.progress(seg.start_epoch)
    cosine = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))
    assert multi.lr_factor(seg.start_epoch) == pytest.approx(cosine * seg.lr_multiplier)
    # the cosine follows the iterations, as in the baseline: the base shape's iterations (most of
    # them) are not left at the tail of a cosine counted in epochs
    baseline = build_schedule(**{**PAPER, "stage_lrs": [1] * 4}, policy="cosine", cosine_end=0.01)
    for share in (0.25, 0.5, 0.75):
        epoch = next(e / 10 for e in range(3580) if multi.progress(e / 10) >= share)
        policy = multi.lr_factor(epoch) / multi.segment_at(epoch).lr_multiplier
        assert policy == pytest.approx(baseline.lr_factor(share * 239), abs=0.01)

    single = build_schedule(base=ClipShape(32, 224), base_batch=512, epochs=239, stage_starts=[0], stage_lrs=[1],
                            policy="cosine", cosine_end=0.0, long_cycle=LONG, short_cycle=SHORT, epoch_factor=1.5)
    assert [seg.lr_multiplier for seg in single.segments] == [8, 4, 2, 1]  # one cycle, no fine-tuning
    assert single.total_epochs == 358
    assert single.lr_factor(358) == pytest.approx(0.0)
    iters = [single.iterations(seg, KINETICS) for seg in single.segments]
    assert max(iters) / min(iters) < 1.05


def test_processes_round_batches_and_check_divisibility():
    s = build_schedule(**{**PAPER, "base_batch": 24}, long_cycle=LONG, short_cycle=SHORT, epoch_factor=1.5, processes=8)
    assert all(b % 8 == 0 for seg in s.segments for b in seg.global_batches)
    assert scaled_batch(12, 1.0, 1 / math.sqrt(2), 8) == 24  # 12 × 2 = 24 clips
    assert scaled_batch(3, 1.0, 0.8, 1) == 5  # 3 × 1.5625 = 4.69 → 5 whole clips
    assert scaled_batch(3, 1.0, 0.8, 2) == 4  # ... → a multiple of 2 processes
    with pytest.raises(ConfigError, match="train.batch_size"):
        build_schedule(**{**PAPER, "base_batch": 10}, processes=4)
    with pytest.raises(ConfigError, match="factors"):
        build_schedule(**PAPER, long_cycle=[(2.0, 1.0)])


def test_epoch_plan_covers_every_clip_once():
    assert epoch_plan(10, [4, 2, 1], 1) == [4, 2, 1, 3]
    assert epoch_plan(14, [4, 2, 1], 1) == [4, 2, 1, 4, 2, 1]
    assert epoch_plan(13, [4, 2], 2) == [4, 2, 4, 3]
    assert epoch_plan(13, [4, 4], 4) == [4, 4, 5]  # 1 clip left for 4 processes joins the last batch
    for n in (7, 100, 1001):
        assert sum(epoch_plan(n, [8, 4, 2], 2)) == n
    with pytest.raises(VidgridError, match="smaller than"):
        epoch_plan(3, [4], 4)


def test_small_recipe_keeps_whole_epochs():
    s = build_schedule(base=ClipShape(8, 64), base_batch=8, epochs=10, stage_starts=[0, 6, 8], stage_lrs=[1, 0.1, 0.01],
                       long_cycle=LONG, short_cycle=SHORT, epoch_factor=1.5)
    assert s.total_epochs == 15
    assert all(seg.epochs >= 1 for seg in s.segments)
    assert s.segments[-1].shape == ClipShape(8, 64)
    assert [str(x) for x in s.segments[0].shapes] == ["2x32²", "2x45²", "2x45²"]


def test_schedule_from_packaged_recipe_and_overrides():
    cfg = load_config("slowfast_r50_multigrid")
    assert (cfg.train.batch_size, cfg.data.frames, cfg.data.sampling_rate) == (512, 32, 2)
    assert cfg.model.name == "slowfast_r50_8x8"
    s = schedule_from_config(cfg, processes=128)
    assert s.total_epochs == 358 and 3.3 <= reduction(s) <= 3.6
    base = schedule_from_config(load_config("slowfast_r50_multigrid", ["multigrid.enabled=false"]))
    assert len(base.segments) == 1 and base.total_epochs == 239
    long_only = schedule_from_config(load_config("slowfast_r50_multigrid", ["multigrid.short_cycle=false"]))
    assert all(len(seg.steps) == 1 for seg in long_only.segments)


def test_the_schedule_carries_the_batch_norm_rules():
    """BN groups of multigrid.bn_base_size clips in every run; precise BN for multigrid runs only."""
    overrides = ["multigrid.bn_base_size=16", "multigrid.precise_bn_batches=50"]
    multigrid = schedule_from_config(load_config("slowfast_r50_multigrid", overrides))
    baseline = schedule_from_config(load_config("slowfast_r50_multigrid", [*overrides, "multigrid.enabled=false"]))
    assert (multigrid.multigrid, multigrid.bn_base_size, multigrid.precise_bn_batches) == (True, 16, 50)
    assert (baseline.multigrid, baseline.bn_base_size, baseline.precise_bn_batches) == (False, 16, 0)


@pytest.mark.parametrize("policy", ["step", "cosine"])
def test_short_recipes_keep_every_lr_stage_and_end_at_the_base_shape(policy):
    base = ClipShape(8, 64)
    for epochs in range(2, 41):
        for steps in ([0], [0, epochs - 1], [0, epochs // 2], [0, max(1, epochs // 3), max(2, 2 * epochs // 3)]):
            if sorted(set(steps)) != steps or steps[-1] >= epochs:
                continue
            lrs = [0.1**k for k in range(len(steps))]
            s = build_schedule(base=base, base_batch=8, epochs=epochs, stage_starts=steps, stage_lrs=lrs, policy=policy,
                               long_cycle=LONG, short_cycle=SHORT, epoch_factor=1.5)
            stages = [seg.lr_stage for seg in s.segments]
            assert stages == sorted(stages) and set(stages) == set(range(len(steps))), (epochs, steps, stages)
            assert s.segments[-1].shape == base and all(seg.epochs >= 1 for seg in s.segments)
            assert list(s.stage_starts) == sorted(set(s.stage_starts))  # every stage at least one epoch
            if policy == "step":  # the run ends at the final LR
                assert s.lr_factor(s.total_epochs - 0.5) == pytest.approx(lrs[-1])
            kept = [seg.shape for seg in s.segments if seg.lr_stage == 0]
            assert len(set(kept)) + len(s.dropped_shapes) == 4  # a shape is run or reported dropped


def test_a_recipe_too_short_for_the_long_cycle_drops_the_coarsest_shapes():
    def demo(epochs, steps, factor=1.5):
        return build_schedule(base=ClipShape(8, 64), base_batch=8, epochs=epochs, stage_starts=steps, stage_lrs=[1, 0.1],
                              policy="step", long_cycle=LONG, short_cycle=SHORT, epoch_factor=factor)

    # 4 epochs, stages [0, 3]: 6 multigrid epochs, one per long-cycle shape, then both fine-tuning halves
    s = demo(4, [0, 3])
    assert [(str(seg.shape), seg.epochs, seg.lr_stage) for seg in s.segments] == [
        ("2x45²", 1, 0), ("4x45²", 1, 0), ("4x64²", 1, 0), ("8x64²", 1, 0), ("8x64²", 1, 0), ("8x64²", 1, 1)
    ]
    assert s.dropped_shapes == ()
    # 3 epochs: 4 multigrid epochs hold 2 long-cycle shapes and the fine-tuning
    s = demo(3, [0, 2])
    assert [str(x) for x in s.dropped_shapes] == ["2x45²", "4x45²"]
    assert [(str(seg.shape), seg.lr_stage) for seg in s.segments] == [
        ("4x64²", 0), ("8x64²", 0), ("8x64²", 0), ("8x64²", 1)
    ]
    with pytest.raises(ConfigError, match="train.epochs"):
        demo(2, [0, 1], factor=1.0)


def test_frame_floor_trades_frames_for_crop_at_the_same_cost():
    assert frame_floor(8, 0.25, 3) == (4, pytest.approx(math.sqrt(0.5)))  # 2 frames -> 4, crops / √2
    assert frame_floor(32, 0.25, 3) == (8, 1.0)  # the paper's SlowFast shapes keep their frames
    assert frame_floor(4, 0.25, 3) == (4, pytest.approx(0.5))  # never past the base frames
    assert frame_floor(8, 0.25, 1) == (2, 1.0)
    demo = dict(base=ClipShape(8, 64), base_batch=8, epochs=40, stage_starts=[0, 26], stage_lrs=[1, 1], policy="cosine",
                long_cycle=LONG, short_cycle=SHORT, epoch_factor=1.5)
    paper_shapes, floored = build_schedule(**demo), build_schedule(**demo, min_frames=3)
    assert [str(x) for x in paper_shapes.segments[0].shapes] == ["2x32²", "2x45²", "2x45²"]
    assert [str(x) for x in floored.segments[0].shapes] == ["4x23²", "4x32²", "4x32²"]
    # same volume per clip, so Eq. 1's batches, the epochs and the iterations are the paper's
    for a, b in zip(paper_shapes.segments, floored.segments):
        assert (a.global_batches, a.start_epoch, a.end_epoch, a.lr_multiplier) == (
            b.global_batches, b.start_epoch, b.end_epoch, b.lr_multiplier)
        for x, y in zip(a.shapes, b.shapes):
            assert x.frames * x.crop**2 == pytest.approx(y.frames * y.crop**2, rel=0.06)  # whole pixels
    assert paper(long_cycle=LONG, short_cycle=SHORT, min_frames=3) == paper(long_cycle=LONG, short_cycle=SHORT)


def test_batch_cap_cuts_the_papers_epochs_into_more_smaller_steps():
    demo = dict(base=ClipShape(8, 64), base_batch=8, epochs=40, stage_starts=[0, 26], stage_lrs=[1, 0.1],
                long_cycle=LONG, short_cycle=SHORT, epoch_factor=1.5, min_frames=3)
    eq1, capped = build_schedule(**demo), build_schedule(**demo, max_batch_factor=2)
    assert [s.global_batches for s in eq1.segments[:3]] == [(128, 64, 64), (64, 32, 32), (64, 32, 16)]
    assert [s.global_batches for s in capped.segments[:3]] == [(16, 16, 16), (16, 16, 16), (16, 16, 16)]
    assert capped.segments[-1].global_batches == (16, 16, 8)  # the base shape keeps B
    for a, b in zip(eq1.segments, capped.segments):  # the paper's shapes, epochs and LR stages
        assert (a.shapes, a.start_epoch, a.end_epoch, a.lr_stage) == (b.shapes, b.start_epoch, b.end_epoch, b.lr_stage)
        assert b.lr_multiplier == b.base_batch / 8  # linear scaling rule on the capped batch
    assert [s.lr_multiplier for s in capped.segments] == [2, 2, 2, 1, 1, 1]
    assert eq1.stage_starts == capped.stage_starts
    assert capped.total_iterations(300) == 1204 and eq1.total_iterations(300) == 505
    # a cap of 1 trains every shape at the baseline's batch and LR
    assert {b for s in build_schedule(**demo, max_batch_factor=1).segments for b in s.global_batches} == {8}
    # with processes the cap is a multiple of them; the paper's recipe without a cap is unchanged
    assert build_schedule(**{**demo, "base_batch": 12}, processes=4, max_batch_factor=1.5).segments[0].global_batches == (16, 16, 16)
    assert paper(long_cycle=LONG, short_cycle=SHORT, max_batch_factor=0) == paper(long_cycle=LONG, short_cycle=SHORT)
    with pytest.raises(ConfigError, match="max_batch_factor"):
        build_schedule(**demo, max_batch_factor=0.5)
