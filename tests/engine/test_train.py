"""The training loop end to end on tiny synthetic videos."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch

from vidgrid.tasks.classification import Classification
from vidgrid.engine import trainer
from vidgrid.engine.checkpoint import list_checkpoints, load_checkpoint
from vidgrid.engine.logging import SUMMARY_KEYS, read_metrics
from vidgrid.engine.optim import lr_at, scaled_lr
from vidgrid.errors import ConfigError
from vidgrid.multigrid.schedule import schedule_from_config
from vidgrid.types import ClipShape


def accuracies_of_predictions(run: Path) -> tuple[float, float]:
    """Top-1 and top-5 of the run's final ``predictions.jsonl`` (the 10 validation videos)."""
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10
    return (sum(r["correct"] for r in rows) / 10, sum(r["label"] in [c for c, _ in r["top5"]] for r in rows) / 10)


@pytest.mark.slow
def test_baseline_run_lowers_the_loss_and_writes_the_run_folder(tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=6", "train.eval_every=3", "train.keep_checkpoints=2")
    summary = trainer.train(cfg, tmp_path / "run")

    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert len(losses) == summary["iterations"] == 18  # 20 videos in batches 8, 8, 4 for 6 epochs
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    assert {(r["frames"], r["crop"]) for r in records if r["split"] == "train"} == {(4, 32)}
    assert [r["epoch"] for r in records if r["split"] == "val"] == [3, 6]

    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(written)
    assert written["epochs"] == 6 and written["clips_seen"] == 6 * 20 and written["skipped_videos"] == []
    assert written["wall_time_s"] > 0
    assert (written["top1"], written["top5"]) == pytest.approx(accuracies_of_predictions(tmp_path / "run"))
    for name in ("config.yaml", "loss.png", "accuracy.png", "lr.png", "predictions.jsonl", "confusion.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert any((tmp_path / "run" / "tb").iterdir())
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["ckpt-000000015.pt", "ckpt-000000018.pt"]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "ckpt-000000018.pt")
    assert ckpt["train"]["state"]["epoch"] == 6 and ckpt["classes"][0] == "slide_left" and ckpt["config"]["model"]["name"] == "x3d_xs"
    card = (tmp_path / "run" / "model_card.md").read_text()
    assert "- train: 20 videos" in card and "- val: 10 videos" in card and "classes (10): slide_left" in card
    assert "iterations: 18; epochs: 6; clips: 120" in card and f"- top1: {written['top1']:.4g}" in card
    assert "views per video: 1 clips x 1 crops = 1" in card and "ckpt-000000018.pt" in card


@pytest.mark.slow
def test_multigrid_run_follows_the_schedule_and_evaluates(tiny_config, tmp_path):
    cfg = tiny_config("multigrid.enabled=true", "train.batch_size=2", "train.epochs=4", "train.eval_every=0",
                      "schedule.warmup_epochs=2")
    schedule = schedule_from_config(cfg)
    summary = trainer.train(cfg, tmp_path / "mg")

    expected = []  # the shape of every iteration: short-cycle position i mod 3 of the epoch's segment
    for epoch in range(schedule.total_epochs):
        segment = schedule.segment_at(epoch)
        expected += [segment.steps[i % len(segment.steps)].shape for i in range(schedule.iterations_per_epoch(segment, 20))]
    records = read_metrics(tmp_path / "mg" / "metrics.jsonl")
    seen = [ClipShape(r["frames"], r["crop"]) for r in records if r["split"] == "train"]
    assert seen == expected and len(set(seen)) >= 5  # long- and short-cycle shapes
    assert summary["epochs"] == schedule.total_epochs == 6  # 1.5 × the baseline's 4
    assert summary["iterations"] == len(expected) and summary["clips_seen"] == 6 * 20
    assert [r["epoch"] for r in records if r["split"] == "val"] == [6]  # validated only at the end
    # LR of every iteration: warm-up over the first half of the iterations (2 of 4 baseline epochs),
    # from the recipe's start LR to the cosine (by iterations) × long-cycle factor
    train_records = [r for r in records if r["split"] == "train"]
    starts = [0.0] + [r["epoch"] for r in train_records][:-1]  # the epoch each iteration started at
    base_lr = scaled_lr(cfg.optim.lr, cfg.train.batch_size, cfg.optim.reference_batch)
    lr = partial(lr_at, base_lr=base_lr, warmup_share=0.5, warmup_start_factor=cfg.schedule.warmup_start_factor,
                 lr_factor=schedule.lr_factor, progress=schedule.progress)
    assert [r["lr"] for r in train_records] == pytest.approx([lr(e) for e in starts], rel=1e-3)
    assert train_records[0]["lr"] == pytest.approx(base_lr * cfg.schedule.warmup_start_factor, rel=1e-3)
    warm = [(r["lr"], base_lr * schedule.lr_factor(e)) for r, e in zip(train_records, starts) if schedule.progress(e) < 0.5]
    assert 0 < len(warm) < len(train_records) and all(lr < scheduled for lr, scheduled in warm)  # damped, then the schedule
    assert set(SUMMARY_KEYS) <= set(summary) and summary["multigrid"] is True
    assert (summary["top1"], summary["top5"]) == pytest.approx(accuracies_of_predictions(tmp_path / "mg"))
    # precise BN: the evaluated (and saved) statistics are the average over the 10 batches of 2
    # base-shape clips of one pass over the 20 training videos, not the running average of all shapes
    state = torch.load(summary["checkpoint"], weights_only=False)["model"]
    tracked = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
    assert tracked and set(tracked.values()) == {10}


def test_non_finite_loss_stops_without_overwriting_the_checkpoint(tiny_config, tmp_path, monkeypatch):
    real, calls = Classification.loss, []

    def poisoned(self, logits, targets):
        calls.append(1)
        value = real(self, logits, targets)
        return value * float("nan") if len(calls) == 5 else value

    monkeypatch.setattr(Classification, "loss", poisoned)
    cfg = tiny_config("train.epochs=3", "train.eval_every=0")
    with pytest.raises(trainer.NonFiniteLossError, match=r"loss became nan at epoch 2 iteration 5.*ckpt-000000003.pt"):
        trainer.train(cfg, tmp_path / "nan")
    good = list_checkpoints(tmp_path / "nan" / "checkpoints")
    assert [p.name for p in good] == ["ckpt-000000003.pt"]
    assert all(torch.isfinite(v).all() for v in load_checkpoint(good[0])["model"].values() if v.is_floating_point())


def test_shapes_are_checked_against_the_model_before_training(tiny_config, tmp_path):
    cfg = tiny_config("model.name=mvitv2_s_16x4", "data.frames=1")
    cfg.model.options = {}
    with pytest.raises(ConfigError, match=r"'data.frames': .* 1x32² clips but mvitv2_s_16x4 needs at least 2 frames"):
        trainer.train(cfg, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_loader_workers_end_with_the_run(tiny_config, tmp_path):
    """The run's one loader is never run to exhaustion, so it is shut down explicitly: its workers
    ignore SIGTERM, and a worker left alive makes the interpreter's exit wait forever (the demo hung).
    With the cycle collector off, nothing but that shutdown can end them."""
    import gc
    import multiprocessing

    cfg = tiny_config("train.epochs=2", "train.eval_every=0", "data.workers=1")
    gc.disable()
    try:
        trainer.train(cfg, tmp_path / "run")
        assert multiprocessing.active_children() == []
    finally:
        gc.enable()
