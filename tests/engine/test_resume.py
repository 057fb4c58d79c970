"""Runs that survive a crash or a preemption: kill a real training process, resume it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vidgrid.config import load_config, save_config
from vidgrid.engine.checkpoint import list_checkpoints, load_checkpoint
from vidgrid.engine.logging import read_metrics
from vidgrid.engine.trainer import train

TIMEOUT_S = 120


def start_training(config: Path, out: Path) -> subprocess.Popen:
    """``python -m vidgrid train CONFIG --out OUT --resume auto`` in a child process (one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vidgrid", "train", str(config), "--out", str(out), "--resume", "auto"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_checkpoint(proc: subprocess.Popen, folder: Path, iteration: int) -> None:
    """Poll until a checkpoint of at least ``iteration`` exists (fail if the child ends or hangs)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        done = [int(p.stem.split("-")[1]) for p in list_checkpoints(folder)]
        if done and max(done) >= iteration:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before iteration {iteration}:\n{proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint of iteration {iteration} within {TIMEOUT_S} s")


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(list_checkpoints(run / "checkpoints")[-1])["model"]


@pytest.mark.slow
def test_sigkill_at_a_random_iteration_then_resume_gives_the_same_weights(tiny_config, tmp_path):
    cfg = tiny_config(
        "multigrid.enabled=true", "train.batch_size=2", "train.epochs=4", "train.eval_every=0",
        "train.checkpoint_every=1", "train.deterministic=true", "optim.name=sgd", "optim.lr=0.05",
    )
    config = tmp_path / "config.yaml"
    save_config(cfg, config)
    reference = train(load_config(config), tmp_path / "reference")
    total = reference["iterations"]  # 11: several multigrid segments, several iterations per epoch

    kill_after = random.randint(2, total - 3)
    proc = start_training(config, tmp_path / "killed")
    wait_for_checkpoint(proc, tmp_path / "killed" / "checkpoints", kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL
    stopped_at = int(list_checkpoints(tmp_path / "killed" / "checkpoints")[-1].stem.split("-")[1])
    assert stopped_at < total, f"the run finished before the kill at iteration {kill_after}"

    resumed = train(load_config(config), tmp_path / "killed", resume="auto")
    assert resumed["iterations"] == total and resumed["clips_seen"] == reference["clips_seen"]
    expected, got = final_weights(tmp_path / "reference"), final_weights(tmp_path / "killed")
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"killed after iteration {stopped_at}: {different[:5]} differ"
    # the resumed loss curve continues the uninterrupted one exactly (records after the checkpoint are dropped)
    curve = lambda run: [(r["iteration"], r["loss"]) for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train"]
    assert curve(tmp_path / "killed") == curve(tmp_path / "reference")


@pytest.mark.slow
def test_sigterm_writes_a_loadable_checkpoint_and_says_how_to_resume(tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=50", "train.eval_every=0", "train.checkpoint_every=2", "data.workers=1")
    config = tmp_path / "config.yaml"
    save_config(cfg, config)
    proc = start_training(config, tmp_path / "run")
    wait_for_checkpoint(proc, tmp_path / "run" / "checkpoints", 2)
    os.killpg(proc.pid, signal.SIGTERM)  # as a cluster does: the loader worker gets it too
    _, stderr = proc.communicate(timeout=TIMEOUT_S)

    assert proc.returncode == 128 + signal.SIGTERM, stderr  # a job script sees the run did not finish
    assert "SIGTERM: stopped at epoch" in stderr and "--resume auto" in stderr and "Traceback" not in stderr
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert ckpt["train"]["state"]["iteration"] >= 2 and ckpt["train"]["state"]["iteration"] < 50 * 3
    state = ckpt["train"]["state"]
    assert state["epoch"] * 3 + state["step"] == ckpt["train"]["state"]["iteration"]  # 3 iterations per epoch
    assert ckpt["train"]["sampler"]["start"] == state["step"]
