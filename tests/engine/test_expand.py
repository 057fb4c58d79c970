"""``vidgrid expand``: the search's choices, its files, the regularisation expansion, and resuming
after the search was killed mid-step (finished candidates are never trained again)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vidgrid.cli import main
from vidgrid.config import Config, load_config
from vidgrid.engine.build import build_model
from vidgrid.engine.expand import RESULT_FILE, Candidate, candidate_recipe, choose, expand_search
from vidgrid.errors import ConfigError, VidgridError
from vidgrid.models.x3d import Gammas

AXES = ["fast", "width", "bottleneck"]
SMALL = ("model.num_classes=10", "expand.start_gammas={s: 0.29, w: 0.5}")  # X2D at 32², half width


class FakeTrainer:
    """Stands in for ``vidgrid train``: records the candidate folders it trains and reports a top-1 per
    axis; with ``die_after`` the process 'dies' (KeyboardInterrupt) in the call after that many."""

    def __init__(self, top1: dict[str, float], die_after: int | None = None) -> None:
        self.top1, self.die_after, self.trained = top1, die_after, []

    def __call__(self, recipe: Path, run: Path) -> dict:
        if self.die_after is not None and len(self.trained) >= self.die_after:
            raise KeyboardInterrupt  # killed while training this candidate
        load_config(recipe)  # the candidate's recipe is a valid recipe
        self.trained.append(f"{recipe.parent.parent.name}/{recipe.parent.name}")
        return {"top1": self.top1.get(recipe.parent.name, 0.1), "best": {}}


@pytest.mark.slow
def test_trace_layout_choice_and_outputs(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    cfg = tiny_config(*SMALL)
    trainer = FakeTrainer({"fast": 0.3, "width": 0.5, "bottleneck": 0.5, "start": 0.2})
    trace = expand_search(cfg, tmp_path, steps=2, axes=AXES, train_fn=trainer)
    assert trainer.trained == ["step_00/start"] + [f"step_0{s}/{a}" for s in (1, 2) for a in AXES]
    saved = json.loads((tmp_path / "trace.json").read_text())
    assert saved == trace and list(saved) == ["steps"] and len(saved["steps"]) == 2
    for step, record in enumerate(saved["steps"], start=1):
        assert list(record) == ["step", "from", "candidates", "chosen"] and record["step"] == step
        assert list(record["from"]) == ["gammas", "gflops", "top1"]
        assert [c["axis"] for c in record["candidates"]] == AXES
        for c in record["candidates"]:
            assert list(c) == ["axis", "gammas", "params", "gflops", "top1"]
            assert list(c["gammas"]) == ["tau", "t", "s", "w", "b", "d"]
            assert 1.7 <= c["gflops"] / record["from"]["gflops"] <= 2.3
        # width and bottleneck tie at 0.5: the cheaper one is chosen
        tied = [c for c in record["candidates"] if c["top1"] == 0.5]
        assert record["chosen"] == min(tied, key=lambda c: c["gflops"])["axis"]
    first, second = saved["steps"]
    chosen = next(c for c in first["candidates"] if c["axis"] == first["chosen"])
    assert second["from"] == {k: chosen[k] for k in ("gammas", "gflops", "top1")}
    assert first["from"]["gammas"] == {"tau": 8.0, "t": 1, "s": 0.29, "w": 0.5, "b": 1, "d": 1}  # τ = 4 frames × 2
    assert (tmp_path / "expansion.png").stat().st_size > 10_000
    final = load_config(tmp_path / "model.yaml")  # ready to train: the recipe's schedule, the final γ
    last = next(c for c in second["candidates"] if c["axis"] == second["chosen"])
    assert final.train.epochs == cfg.train.epochs and final.train.batch_size == cfg.train.batch_size
    assert final.data.frames == last["gammas"]["t"]
    assert sum(p.numel() for p in build_model(final, num_classes=10).parameters()) == last["params"]


@pytest.mark.slow
def test_resume_after_a_kill_mid_step_retrains_nothing_finished(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    cfg = tiny_config(*SMALL)
    scores = {"fast": 0.6, "width": 0.4, "bottleneck": 0.2}
    killed = FakeTrainer(scores, die_after=2)  # the start and step 1's first candidate finish, then the kill
    with pytest.raises(KeyboardInterrupt):
        expand_search(cfg, tmp_path, steps=2, axes=AXES, train_fn=killed)
    assert killed.trained == ["step_00/start", "step_01/fast"]
    assert (tmp_path / "step_01" / "fast" / RESULT_FILE).is_file()
    assert not (tmp_path / "step_01" / "width" / RESULT_FILE).exists()
    with pytest.raises(VidgridError, match="holds a search already"):
        (tmp_path / "trace.json").write_text('{"steps": []}')
        expand_search(cfg, tmp_path, steps=2, axes=AXES, train_fn=FakeTrainer(scores))
    resumed = FakeTrainer(scores)
    trace = expand_search(cfg, tmp_path, steps=2, axes=AXES, resume=True, train_fn=resumed)
    assert resumed.trained == ["step_01/width", "step_01/bottleneck", "step_02/fast", "step_02/width", "step_02/bottleneck"]
    assert [s["chosen"] for s in trace["steps"]] == ["fast", "fast"]
    again = FakeTrainer(scores)
    assert expand_search(cfg, tmp_path, steps=2, axes=AXES, resume=True, train_fn=again) == trace
    assert again.trained == []


def test_regularisation_expansion(tiny_config: Callable[..., Config]) -> None:
    cfg = tiny_config("train.epochs=9", "schedule.steps=[0, 6]", "schedule.lrs=[1.0, 0.1]", "schedule.warmup_epochs=2")
    g = Gammas(tau=2, t=4, s=0.29, w=0.5, b=1, d=1)
    first, eighth, eleventh = (candidate_recipe(cfg, g, step) for step in (1, 8, 11))
    assert (first.train.batch_size, eighth.train.batch_size) == (16, 8)
    assert first.optim.reference_batch == 8  # the LR follows the batch linearly
    assert first.train.epochs == 4 and first.schedule.steps == [0, 3] and first.schedule.warmup_epochs == 1
    assert first.multigrid.bn_base_size == 16
    assert (first.model.drop_path, eighth.model.drop_path, eleventh.model.drop_path) == (None, None, 0.1)
    assert (first.data.frames, first.data.sampling_rate, first.data.crop) == (4, 2, 32)
    later = candidate_recipe(tiny_config("expand.batch_halving_step=2", "expand.drop_connect_step=3"), g, 3)
    assert later.train.batch_size == 8 and later.model.drop_path == 0.1


def test_ties_go_to_fewer_flops() -> None:
    a = Candidate("width", {}, 1, 0.02, 0.5)
    b = Candidate("depth", {}, 1, 0.01, 0.5)
    assert choose([a, b]) is b and choose([a, Candidate("fast", {}, 1, 0.03, 0.6)]).axis == "fast"


def test_bad_search_settings_are_one_line_errors(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--axes fast sideways: expected some of fast, temporal"):
        expand_search(tiny_config(*SMALL), tmp_path, axes=["fast", "sideways"])
    with pytest.raises(ConfigError, match="--axes fast fast: .*, each once"):
        expand_search(tiny_config(*SMALL), tmp_path, axes=["fast", "fast"])
    with pytest.raises(ConfigError, match="'expand.steps' = 0: expected an integer >= 1"):
        expand_search(tiny_config(*SMALL), tmp_path, steps=0)
    with pytest.raises(ConfigError, match="'model.name' = 'mvitv2_s_16x4': expand grows an X3D"):
        expand_search(tiny_config(*SMALL, "model.name=mvitv2_s_16x4", "model.options={}"), tmp_path)
    with pytest.raises(ConfigError, match="'expand.start_gammas': unknown factor 'q'"):
        expand_search(tiny_config("expand.start_gammas={q: 1}"), tmp_path)


def test_cli_reports_bad_input_in_one_line(tiny_args: Callable[..., list[str]], tmp_path: Path, capsys) -> None:
    assert main(["expand", "demo", *tiny_args(*SMALL), "--axes", "up", "--out", str(tmp_path)]) == 2
    expected = "error: --axes up: expected some of fast, temporal, spatial, depth, width, bottleneck, each once"
    assert capsys.readouterr().err.strip() == expected


@pytest.mark.slow
def test_killed_search_resumes_without_retraining(tiny_args: Callable[..., list[str]], tmp_path: Path) -> None:
    """The real thing: ``vidgrid expand`` killed (SIGKILL) after a candidate finished, then ``--resume``."""
    out = tmp_path / "search"
    command = [sys.executable, "-m", "vidgrid", "expand", "demo", *tiny_args(*SMALL, "train.epochs=2"),
               "--steps", "1", "--axes", "fast", "width", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fast = out / "step_01" / "fast"
    deadline = time.monotonic() + 300
    while not (fast / RESULT_FILE).is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (fast / RESULT_FILE).is_file() and not (out / "step_01" / "width" / RESULT_FILE).exists()
    finished = {p: p.stat().st_mtime_ns for p in (out / "step_00" / "start", fast) for p in p.rglob("*") if p.is_file()}
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # nothing of a finished candidate was touched
    trace = json.loads((out / "trace.json").read_text())
    assert [c["axis"] for c in trace["steps"][0]["candidates"]] == ["fast", "width"]
    assert "step 1:" in done.stdout and (out / "step_01" / "width" / RESULT_FILE).is_file()


def test_parallel_candidates_train_in_child_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import threading

    from vidgrid.engine import expand

    running, most, lock = [], [], threading.Lock()

    def child(recipe: Path, run: Path, *, device: str | None) -> dict:
        with lock:
            running.append(recipe)
            most.append(len(running))
        time.sleep(0.2)
        with lock:
            running.remove(recipe)
        return {"top1": 0.5, "best": {}}

    monkeypatch.setattr(expand, "train_in_subprocess", child)
    monkeypatch.setattr(expand.torch.cuda, "device_count", lambda: 0)
    jobs = [lambda train, a=a: Candidate(a, {}, 1, 1.0, train(tmp_path / a / "recipe.yaml", tmp_path / a / "run")["top1"])
            for a in ("fast", "width", "depth")]
    results = expand.run_jobs(jobs, 2, None)
    assert [c.axis for c in results] == ["fast", "width", "depth"]  # in the axes' order
    assert max(most) == 2  # two at a time


def test_resume_with_other_settings_is_refused(tiny_config: Callable[..., Config], tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        expand_search(tiny_config(*SMALL), tmp_path, steps=1, axes=["width"], train_fn=FakeTrainer({}, die_after=1))
    other = tiny_config("model.num_classes=10", "expand.start_gammas={s: 0.29, w: 0.75}")
    with pytest.raises(VidgridError, match=r"result.json: trained γtau=8 γt=1 γs=0.29 γw=0.5 .* now asks for .*γw=0.75"):
        expand_search(other, tmp_path, steps=1, axes=["width"], resume=True, train_fn=FakeTrainer({}))
