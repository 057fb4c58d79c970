"""The MultiTrain benchmark's arithmetic: arms compared on the same seeds."""

from __future__ import annotations

from benchmarks.bench_multitrain import paired


def test_differences_are_paired_by_seed_with_the_standard_error_of_their_mean() -> None:
    # the soft B at 2,000 steps, seeds 0-6: (c) against (b) on A
    full = [96.5, 96.5, 98.0, 97.5, 98.5, 98.0, 96.5]
    heads = [99.5, 98.0, 98.0, 98.5, 99.5, 99.5, 100.0]
    assert paired(full, heads) == "-1.6 points (by seed -3.0 / -1.5 / +0.0 / -1.0 / -1.0 / -1.5 / -3.5, standard error 0.5)"
    assert paired([97.0], [96.0]) == "+1.0 points (by seed +1.0)"  # one seed: no spread to estimate
