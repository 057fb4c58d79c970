"""The robustness suite's arithmetic: training time read from a run's records, and the verdict per dataset."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench_multigrid import format_suite, suite_verdict, training_seconds


def test_training_time_is_the_last_training_record_not_the_validation(tmp_path) -> None:
    records = [{"split": "train", "iteration": 10, "wall_s": 4.0}, {"split": "train", "iteration": 20, "wall_s": 9.5},
               {"split": "val", "iteration": 20, "wall_s": 14.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert training_seconds(tmp_path) == 9.5


def row(dataset, arm, seed, top1, wall, training):
    return {"dataset": dataset, "arm": arm, "seed": seed, "top1": top1, "wall_time_s": wall, "training_s": training,
            "iterations": 100}


def test_verdict_averages_the_seeds_and_needs_both_one_point_and_2_5x_in_all() -> None:
    table = [
        row("motion", "baseline", 0, 0.997, 680.0, 660.0), row("motion", "baseline", 1, 0.995, 700.0, 680.0),
        row("motion", "multigrid", 0, 0.996, 230.0, 210.0), row("motion", "multigrid", 1, 0.990, 234.0, 214.0),
        # 0.5 points down, 2.4x in all but 2.7x in training alone: the target is wall-clock in all
        row("timing", "baseline", 0, 0.98, 600.0, 585.0), row("timing", "multigrid", 0, 0.975, 250.0, 216.0),
        row("appearance", "baseline", 0, 0.56, 250.0, 233.0),  # no multigrid run yet: no verdict
    ]
    motion, timing = suite_verdict(table)
    assert motion["dataset"] == "motion" and motion["points"] == pytest.approx(-0.3)
    assert motion["speedup"] == pytest.approx(690 / 232) and motion["training_speedup"] == pytest.approx(670 / 212)
    assert motion["passed"]
    assert timing["points"] == pytest.approx(-0.5) and timing["training_speedup"] > 2.5 > timing["speedup"]
    assert not timing["passed"]
    printed = format_suite(table)
    assert "MISSED" in printed.splitlines()[-1] and " met" in printed.splitlines()[-2]
