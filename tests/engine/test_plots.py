"""`vidgrid plot mixup|runs|schedule`: the Beta(α, α) reading of the mixing ratio, overlaid runs, the schedule PNG."""

from __future__ import annotations

import json

import pytest

from vidgrid.cli import main
from vidgrid.engine.mixup import beta_density, hard_mix_probability


def test_beta_density_and_how_often_each_alpha_mixes_hard():
    assert beta_density(1.0, 0.3) == pytest.approx(1.0)
    assert beta_density(2.0, 0.5) == pytest.approx(1.5)  # 6·λ(1-λ)
    assert hard_mix_probability(1.0) == pytest.approx(0.5, abs=1e-6)  # uniform
    assert hard_mix_probability(2.0) == pytest.approx(0.6875, abs=1e-6)  # ∫ 6λ(1-λ) over [1/4, 3/4]
    chances = [hard_mix_probability(a) for a in (0.2, 0.8, 1.0, 2.0, 8.0)]
    assert chances == sorted(chances) and chances[0] < 0.2  # larger α, stronger mixing


def test_plot_mixup_prints_the_reading_and_writes_the_png(tmp_path, capsys):
    assert main(["plot", "mixup", "--alpha", "0.2", "1", "2", "--out", str(tmp_path / "m.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "alpha 0.2: P(0.25 < λ < 0.75) = 0.172; λ leans to 0 or 1: weak mixing"
    assert lines[1].endswith("= 0.500; λ uniform") and lines[2].endswith("strong mixing")
    assert (tmp_path / "m.png").stat().st_size > 10_000
    assert main(["plot", "mixup", "--alpha", "0", "--out", str(tmp_path / "n.png")]) == 2
    assert capsys.readouterr().err.strip() == "error: --alpha 0: expected values > 0"


def _run_folder(path, *, seconds_per_iteration):
    path.mkdir()
    records = [{"split": "train", "iteration": i, "epoch": i / 10, "wall_s": i * seconds_per_iteration,
                "loss": 2.0 / i, "lr": 0.1, "batch": 8} for i in range(1, 31)]
    records += [{"split": "val", "iteration": i, "epoch": i / 10, "wall_s": i * seconds_per_iteration, "loss": 1.0,
                 "top1": i / 40, "top5": 0.9, "videos": 10} for i in (10, 20, 30)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_plot_runs_overlays_loss_metric_and_lr(tmp_path, capsys):
    _run_folder(tmp_path / "multigrid", seconds_per_iteration=0.5)
    _run_folder(tmp_path / "baseline", seconds_per_iteration=2.0)
    out = tmp_path / "plots"
    assert main(["plot", "runs", str(tmp_path / "multigrid"), str(tmp_path / "baseline"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"plot: {out / n}" for n in ("runs_loss.png", "runs_top1.png", "runs_lr.png")]


def test_plot_runs_names_a_folder_without_metrics(tmp_path, capsys):
    assert main(["plot", "runs", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no metrics.jsonl (expected a run folder written by vidgrid train)"


def test_plot_schedule_writes_the_schedule_png(tmp_path, capsys):
    assert main(["plot", "schedule", "demo", "--dataset-size", "200", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 10_000
    assert "multigrid" in capsys.readouterr().out.lower()
