"""The GPU suite's CPU-testable parts: MFU arithmetic, budgets, the compile-mode choice, the results file
that survives a stop, and the bf16 training check on a tiny model."""

from __future__ import annotations

import json
import time

import pytest
import torch

from benchmarks import gpu_suite
from benchmarks.gpu_suite import measurement_plan
from benchmarks.gpu_models import Subject, check_bf16_training, small_shape, vidgrid_subject
from benchmarks.gpu_results import (
    PEAK_BF16_FLOPS, Budget, Results, cheapest_compile_mode, mfu, section_budget, train_flops_per_clip,
)
from vidgrid.models import create_model


def test_mfu_counts_three_forward_passes_of_two_flops_per_mac_against_989_tflops() -> None:
    assert PEAK_BF16_FLOPS == 989e12
    assert train_flops_per_clip(1.96e9) == pytest.approx(6 * 1.96e9)
    # X3D-S (1.96 GMACs per clip) at 1,000 clips/s: 11.76 TFLOP/s of 989
    assert mfu(1000.0, 1.96e9) == pytest.approx(11.76e12 / 989e12)
    assert mfu(0.0, 1.96e9) == 0.0
    with pytest.raises(ValueError, match="mfu needs .* a positive peak: 10.0, 1000000000.0, 0.0$"):
        mfu(10.0, 1e9, peak_flops=0.0)


def test_cheapest_compile_mode_weighs_overhead_against_steady_time() -> None:
    modes = {
        "eager": {"overhead_s": 0.0, "steady_s_per_iter": 0.2},
        "static": {"overhead_s": 30.0, "steady_s_per_iter": 0.1},
    }
    assert cheapest_compile_mode(modes, iterations=100) == "eager"  # 20 s against 40 s
    assert cheapest_compile_mode(modes, iterations=1000) == "static"  # 200 s against 130 s
    with pytest.raises(ValueError, match="^no compile modes were measured$"):
        cheapest_compile_mode({}, iterations=10)


def test_budget_runs_out_and_later_sections_shrink_after_an_overrun() -> None:
    now = [100.0]
    budget = Budget(10.0, clock=lambda: now[0])
    now[0] = 104.0
    assert budget.left() == pytest.approx(6.0) and not budget.spent(reserve=5.0)
    assert budget.spent(reserve=7.0)
    now[0] = 111.0
    assert budget.spent()

    planned = {"a": 10.0, "b": 20.0, "c": 30.0}
    assert section_budget(planned, "a", 60.0) == 10.0
    assert section_budget(planned, "b", 50.0) == 20.0  # on time
    assert section_budget(planned, "b", 25.0) == pytest.approx(10.0)  # "a" overran by 25 s
    assert section_budget(planned, "c", -3.0) == 0.0


def test_results_are_on_disk_after_each_measurement(tmp_path) -> None:
    results = Results(tmp_path, {"device": "cpu", "torch": "x", "peak_tflops": 989.0})
    assert json.loads(results.json_path.read_text())["sections"] == {}
    results.add("models", {"model": "x3d_s", "source": "vidgrid", "input": "3,4,32,32", "batch": 2, "variant": "fp32",
                           "train_clips_per_s": 9.5, "first_step_s": 0.3, "peak_memory_gib": None, "mfu_pct": float("nan")})
    saved = json.loads(results.json_path.read_text())
    assert saved["models"][0]["train_clips_per_s"] == 9.5
    assert saved["models"][0]["mfu_pct"] is None  # NaN is not JSON
    assert "| x3d_s | vidgrid | 3,4,32,32 | 2 | fp32 | 9.5 |" in results.table_path.read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_stopped_run_keeps_the_figures_measured_before_the_stop(tmp_path, monkeypatch) -> None:
    calls = []

    def check(name: str, **kwargs) -> dict:
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or the device's time limit) in the second measurement
        return {"model": name, "losses": [2.0, 1.0], "falls": True, "eval_rel_err": 0.01, "ok": True}

    monkeypatch.setattr(gpu_suite, "check_bf16_training", check)
    with pytest.raises(KeyboardInterrupt):
        gpu_suite.run(tmp_path / "out", tmp_path / "work", gpu_suite.DRY, sections=("correctness",))
    saved = json.loads((tmp_path / "out" / "gpu_suite.json").read_text())
    assert [row["model"] for row in saved["correctness"]] == ["x3d_s"]
    assert saved["meta"]["dry"] is True and saved["meta"]["peak_tflops"] == 989.0


def test_a_failing_section_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch) -> None:
    def broken(*args) -> str:
        raise RuntimeError("CUDA error: an illegal memory access\nmore lines")

    monkeypatch.setattr(gpu_suite, "correctness", broken)
    monkeypatch.setattr(gpu_suite, "models", lambda results, s, budget, device: "done")
    results = gpu_suite.run(tmp_path / "out", tmp_path / "work", gpu_suite.DRY, sections=("correctness", "models"))
    sections = json.loads(results.json_path.read_text())["sections"]
    assert sections["correctness"]["status"] == "failed: RuntimeError: CUDA error: an illegal memory access"
    assert sections["models"]["status"] == "done"


def test_small_shape_respects_the_models_frame_and_crop_rules() -> None:
    with torch.device("meta"):
        slowfast = create_model("slowfast_r50_8x8")
    c, t, h, w = small_shape(slowfast, 3, 30)
    assert t >= slowfast.min_frames and t % slowfast.frames_multiple == 0 and h % slowfast.crop_multiple == 0
    assert vidgrid_subject("x3d_xs", None).shape == (3, 4, 160, 160)


def test_bf16_check_trains_a_tiny_x3d_and_compares_eval_logits_with_fp32() -> None:
    torch.set_num_threads(1)
    row = check_bf16_training("x3d_xs", tiny=(4, 32), batch=2, steps=3, device=torch.device("cpu"), tolerance=0.05)
    assert row["finite"] and len(row["losses"]) == 3
    assert row["falls"] == (row["losses"][-1] < row["losses"][0])
    assert row["autocast_logits_dtype"] == "bfloat16"  # the eval pass really ran in bf16
    assert 0 < row["eval_rel_err"] <= 0.05 and row["ok"]


def test_plan_measures_every_eager_variant_before_any_compiled_one_checked_models_first() -> None:
    def subject(model: str, source: str) -> Subject:
        return Subject(model, source, (3, 4, 32, 32), build=lambda: None)

    subjects = [subject("x3d_s", "vidgrid"), subject("x3d_l", "vidgrid"), subject("x3d_s", "pytorchvideo")]
    plan = [(x.model, x.source, v) for x, v in measurement_plan(subjects, ["eager", "bf16", "bf16+cl3d+compile"])]
    assert plan == [
        ("x3d_s", "vidgrid", "eager"), ("x3d_s", "vidgrid", "bf16"),
        ("x3d_s", "pytorchvideo", "eager"), ("x3d_s", "pytorchvideo", "bf16"),
        ("x3d_l", "vidgrid", "eager"), ("x3d_l", "vidgrid", "bf16"),
        ("x3d_s", "vidgrid", "bf16+cl3d+compile"), ("x3d_s", "pytorchvideo", "bf16+cl3d+compile"),
        ("x3d_l", "vidgrid", "bf16+cl3d+compile"),
    ]


def test_a_measurement_past_the_sections_budget_becomes_an_error_row_and_the_run_goes_on() -> None:
    started = time.perf_counter()
    row = gpu_suite._guarded(lambda: time.sleep(5) or {"clips_per_s": 1.0}, Budget(0.3), model="x3d_s")
    assert time.perf_counter() - started < 2
    assert row == {"model": "x3d_s", "error": "TimeLimit: stopped after 0.3 s"}
    assert gpu_suite._guarded(lambda: {"clips_per_s": 1.0}, Budget(5), model="x3d_s") == {"model": "x3d_s", "clips_per_s": 1.0}


def test_an_overrun_reads_as_one_even_when_the_measured_code_wraps_the_alarm_in_its_own_error() -> None:
    def compile_like() -> dict:
        try:
            time.sleep(5)
        except Exception as e:  # as Dynamo wraps an error raised during fake-tensor propagation
            raise RuntimeError("RuntimeError when making fake tensor call") from e
        return {}

    assert gpu_suite._guarded(compile_like, Budget(0.3), mode="automatic") == {
        "mode": "automatic", "error": "TimeLimit: stopped after 0.3 s"}


@pytest.mark.slow
def test_the_loader_section_rehearses_on_cpu(tmp_path) -> None:
    results = gpu_suite.run(tmp_path / "out", tmp_path / "work", gpu_suite.DRY, sections=("loader",))
    saved = json.loads(results.json_path.read_text())
    assert saved["sections"]["loader"]["status"] == "done"
    speeds = [row["clips_per_s"] for row in saved["loader"] if row["what"] != "torchcodec"]
    assert len(speeds) == 3 and all(v > 0 for v in speeds)


def test_command_line_settings_pick_models_demo_runs_and_budgets() -> None:
    s = gpu_suite.settings_for(False, models=["x3d_l"], demo_epochs=40, demo_seeds=[0, 1], budgets=["demo=300", "loader=10.5"])
    assert s.models == ("x3d_l",) and s.demo_epochs == 40 and s.demo_seeds == (0, 1)
    assert s.budgets["demo"] == 300.0 and s.budgets["loader"] == 10.5 and s.budgets["models"] == gpu_suite.GPU.budgets["models"]
    assert s.total_s == pytest.approx(gpu_suite.GPU.total_s + (300 - 80) + (10.5 - 40))
    assert gpu_suite.settings_for(True) == gpu_suite.DRY
    for word in ("demo", "dmeo=30", "demo=-5", "demo=fast"):
        with pytest.raises(ValueError, match=f"^--budget {word}: expected SECTION=SECONDS with SECTION one of correctness, "):
            gpu_suite.settings_for(False, budgets=[word])


@pytest.mark.slow
def test_the_demo_section_times_the_baseline_and_both_multigrid_batchings_per_seed(tmp_path) -> None:
    s = gpu_suite.settings_for(True, demo_seeds=[0, 1])
    results = gpu_suite.run(tmp_path / "out", tmp_path / "work", s, sections=("demo",))
    rows = json.loads(results.json_path.read_text())["demo"]
    assert [(r["run"], r["seed"]) for r in rows] == [(run, seed) for seed in (0, 1) for run in gpu_suite.DEMO_ARMS]
    assert rows[1]["iterations"] >= rows[2]["iterations"]  # the cap cuts Eq. 1's steps into more, smaller ones
    assert "multigrid.max_batch_factor=0" in rows[2]["overrides"] and "train.precision=fp32" in rows[2]["overrides"]
    speedup = rows[0]["wall_time_s"] / rows[1]["wall_time_s"]
    assert f"demo multigrid, seed 0: {rows[1]['wall_time_s']:.1f} s" in results.table_path.read_text()
    assert f"{speedup:.2f}x the baseline's speed" in results.table_path.read_text()
