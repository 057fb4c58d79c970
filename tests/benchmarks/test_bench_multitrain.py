"""The MultiTrain benchmark's arithmetic: arms compared on the same seeds."""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench_multitrain import A_TRAIN, arm_config, paired, run_folder


def test_differences_are_paired_by_seed_with_the_standard_error_of_their_mean() -> None:
    # the soft B at 2,000 steps, seeds 0-6: (c) against (b) on A
    full = [96.5, 96.5, 98.0, 97.5, 98.5, 98.0, 96.5]
    heads = [99.5, 98.0, 98.0, 98.5, 99.5, 99.5, 100.0]
    assert paired(full, heads) == "-1.6 points (by seed -3.0 / -1.5 / +0.0 / -1.0 / -1.0 / -1.5 / -3.5, standard error 0.5)"
    assert paired([97.0], [96.0]) == "+1.0 points (by seed +1.0)"  # one seed: no spread to estimate


def _video_list(root: Path, videos: int) -> Path:
    root.mkdir(parents=True)
    (root / "train.csv").write_text("".join(f"v{i}.mp4 {i % 10}\n" for i in range(videos)))
    return root


def test_a_smaller_a_keeps_the_step_budget_in_runs_of_its_own(tmp_path: Path) -> None:
    a, b = _video_list(tmp_path / "A-3", 30), _video_list(tmp_path / "B-soft", 500)
    start = tmp_path / "pretrain.pt"
    # about 2,000 steps of 8 clips whatever A's size: 533 epochs of A alone, 27 of A's 3 draws + B
    assert arm_config("a", a, b, start, 2000, 0, []).train.epochs == 533
    assert arm_config("c", a, b, start, 2000, 0, []).train.epochs == 27
    assert run_folder(tmp_path, "a", "soft", 1, A_TRAIN).name == "a-seed1"  # the default A keeps its runs' names
    assert run_folder(tmp_path, "c", "soft", 1, 3).name == "c-soft-3-seed1"
