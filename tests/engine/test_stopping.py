"""Stops that must end with a checkpoint, and stalls that must end at all: a repeated SIGTERM (as
torchrun forwards it), a stop during validation, a loader worker that never answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from test_resume import wait_for_checkpoint
from vidgrid.data.dataset import VideoClipDataset, VideoTestDataset
from vidgrid.engine.checkpoint import list_checkpoints, load_checkpoint
from vidgrid.engine.logging import read_metrics
from vidgrid.engine.stopping import exit_status, resume_command
from vidgrid.engine.trainer import train
from vidgrid.multigrid.schedule import schedule_from_config

STALLING_TRAIN = """
import os, signal, sys, time
import torch.utils.data
from vidgrid.cli import main
from vidgrid.data.dataset import VideoClipDataset

served = 0
serve = VideoClipDataset.__getitem__


def stalling(self, item):  # a loader worker whose 9th clip never comes: stopped, or a read that hangs
    global served
    served += 1
    if served == 9 and torch.utils.data.get_worker_info() is not None:
        if os.environ["STALL"] == "sigstop":
            os.kill(os.getpid(), signal.SIGSTOP)
        time.sleep(3600)
    return serve(self, item)


VideoClipDataset.__getitem__ = stalling
sys.exit(main(sys.argv[1:]))
"""


def start(argv: list[str], tmp_path: Path, *, stalling: str = "") -> subprocess.Popen:
    """``vidgrid ARGV`` in a child process of its own session (one thread); ``stalling`` = ``sigstop``
    or ``read``: its loader worker is stopped, or its read hangs, on its 9th clip (the third batch of 4)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STALL": stalling}
    if stalling:
        (tmp_path / "stalling.py").write_text(STALLING_TRAIN)
        cmd = [sys.executable, str(tmp_path / "stalling.py"), *argv]
    else:
        cmd = [sys.executable, "-m", "vidgrid", *argv]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Child runs to kill with their whole session (stalled loader workers included) after the test."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(proc: subprocess.Popen, timeout_s: float = 60) -> str:
    try:
        return proc.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the run did not end within {timeout_s} s:\n{proc.communicate()[1]}")


@pytest.fixture
def train_argv(tiny_args, tmp_path):
    """``vidgrid train`` argv of a tiny baseline run into ``tmp_path/run`` (5 iterations per epoch)."""
    return lambda *extra: ["train", "demo", *tiny_args("multigrid.enabled=false", "train.batch_size=4", *extra),
                           "--out", str(tmp_path / "run")]


@pytest.mark.slow
def test_a_repeated_sigterm_does_not_abort_the_stop_checkpoint(train_argv, tmp_path, started):
    proc = start(train_argv("train.epochs=50", "train.eval_every=0", "train.checkpoint_every=2"), tmp_path)
    started.append(proc)
    wait_for_checkpoint(proc, tmp_path / "run" / "checkpoints", 2)
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)  # torchrun forwards the SIGTERM every rank already got
    stderr = finish(proc)
    assert proc.returncode == 143, stderr
    assert "SIGTERM: stopped at epoch" in stderr and "Traceback" not in stderr
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert ckpt["train"]["state"]["iteration"] == ckpt["train"]["state"]["epoch"] * 5 + ckpt["train"]["state"]["step"]


@pytest.mark.slow
def test_a_stalled_loader_worker_ends_with_one_line_after_the_loader_timeout(train_argv, tmp_path, started):
    began = time.monotonic()
    proc = start(train_argv("data.workers=1", "data.loader_timeout_s=3", "train.checkpoint_every=1"), tmp_path, stalling="sigstop")
    started.append(proc)
    stderr = finish(proc)
    assert proc.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "within 3 s" in errors[0] and "'data.loader_timeout_s'" in errors[0], stderr
    assert "Traceback" not in stderr and time.monotonic() - began < 60
    assert list_checkpoints(tmp_path / "run" / "checkpoints")  # the iterations before the stall are kept


ABANDONED_HANDOVER = """
import os, socket, sys, time
from multiprocessing import resource_sharer
from vidgrid.engine.loading import make_loader

if sys.argv[1] == "loader-worker":
    make_loader([], workers=1, seed=0).worker_init_fn(0)
handle = resource_sharer.DupFd(os.open(os.devnull, os.O_RDONLY))  # how a worker hands over a batch's shared memory
with socket.socket(socket.AF_UNIX) as receiver:  # the training process connects, then stops mid-transfer
    receiver.connect(handle._id[0])
time.sleep(0.5)
"""


@pytest.mark.slow
def test_a_loader_worker_says_nothing_when_the_training_process_stops_mid_handover(tmp_path):
    (tmp_path / "handover.py").write_text(ABANDONED_HANDOVER)
    run = lambda role: subprocess.run([sys.executable, str(tmp_path / "handover.py"), role], capture_output=True, text=True, timeout=60)
    assert "Traceback" in run("plain-process").stderr  # what a stop mid-transfer printed from every worker
    worker = run("loader-worker")
    assert worker.returncode == 0 and worker.stderr == ""


@pytest.mark.slow
def test_sigterm_while_waiting_on_a_stalled_worker_writes_the_last_iterations_checkpoint(train_argv, tmp_path, started):
    proc = start(train_argv("data.workers=1", "train.checkpoint_every=1"), tmp_path, stalling="read")
    started.append(proc)
    wait_for_checkpoint(proc, tmp_path / "run" / "checkpoints", 2)
    time.sleep(1.5)  # the third batch never comes
    os.killpg(proc.pid, signal.SIGTERM)
    stderr = finish(proc, timeout_s=30)
    assert proc.returncode == 143, stderr
    assert "SIGTERM: stopped at epoch 1 iteration 2" in stderr and "Traceback" not in stderr
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert ckpt["train"]["state"]["iteration"] == 2 and ckpt["train"]["state"]["step"] == 2


def test_a_stop_during_validation_checkpoints_instead_of_finishing_it(tiny_config, tmp_path, monkeypatch):
    served = []
    view = VideoTestDataset.__getitem__

    def signalling(self, index):
        served.append(index)
        if len(served) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # a cluster's stop arrives during the first validation
        return view(self, index)

    monkeypatch.setattr(VideoTestDataset, "__getitem__", signalling)
    cfg = tiny_config("multigrid.enabled=false", "train.batch_size=4", "train.epochs=3", "train.eval_every=1",
                      "eval.batch_size=2")
    summary = train(cfg, tmp_path / "run")
    assert summary["preempted"] == "SIGTERM" and exit_status(summary) == 143
    assert len(served) <= 2  # at most the batch under way: the other 8 of 10 videos were not scored
    assert summary["iterations"] == 5  # no iteration after the stop
    # the checkpoint holds the first epoch at its end (5 of 5 batches), not yet validated
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert ckpt["train"]["state"]["iteration"] == 5 and ckpt["train"]["state"]["epoch"] == 0 and ckpt["train"]["state"]["step"] == 5

    # resumed, the run validates that epoch before training on: the same run as one never stopped
    monkeypatch.setattr(VideoTestDataset, "__getitem__", view)
    resumed, whole = train(cfg, tmp_path / "run", resume="auto"), train(cfg, tmp_path / "whole")
    validations = lambda run: [(r["epoch"], r["top1"]) for r in read_metrics(run / "metrics.jsonl") if r["split"] == "val"]
    assert [epoch for epoch, _ in validations(tmp_path / "whole")] == [1, 2, 3]
    assert validations(tmp_path / "run") == validations(tmp_path / "whole")
    assert (resumed["iterations"], resumed["epochs"], resumed["top1"]) == (whole["iterations"], whole["epochs"], whole["top1"]) == (15, 3, whole["top1"])


def test_a_stop_while_precise_bn_waits_for_a_clip_resumes_into_precise_bn_and_the_validation(tiny_config, tmp_path, monkeypatch):
    """A multigrid run stopped while precise BN waits for a base-shape clip checkpoints its last epoch
    at its end, unevaluated; resumed, it recomputes the statistics and validates, as a run never stopped."""
    cfg = tiny_config("multigrid.enabled=true", "train.batch_size=2", "train.epochs=4", "train.eval_every=0")
    total = schedule_from_config(cfg).total_epochs
    clip = VideoClipDataset.__getitem__

    def signalling(self, item):
        if item[2] == total:  # precise BN's clips are drawn with the epochs done; training's with fewer
            os.kill(os.getpid(), signal.SIGTERM)
        return clip(self, item)

    monkeypatch.setattr(VideoClipDataset, "__getitem__", signalling)
    stopped = train(cfg, tmp_path / "run")
    state = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])["train"]["state"]
    assert stopped["preempted"] == "SIGTERM" and state["epoch"] == total - 1 and state["step"] > 0
    assert not [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "val"]

    monkeypatch.setattr(VideoClipDataset, "__getitem__", clip)
    resumed, whole = train(cfg, tmp_path / "run", resume="auto"), train(cfg, tmp_path / "whole")
    assert (resumed["iterations"], resumed["epochs"], resumed["top1"]) == (whole["iterations"], total, whole["top1"])
    bn = lambda summary: {k: v for k, v in load_checkpoint(summary["checkpoint"])["model"].items() if "running_" in k}
    expected, got = bn(whole), bn(resumed)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_the_resume_hint_of_a_multi_process_run_is_a_torchrun_command(monkeypatch):
    config, out = Path("run/config.yaml"), Path("run")
    assert resume_command(config, out, world_size=1) == "vidgrid train run/config.yaml --out run --resume auto"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resume_command(config, out, world_size=2) == "torchrun --nproc-per-node 2 -m vidgrid train run/config.yaml --out run --resume auto"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resume_command(config, out, world_size=8).startswith("torchrun --nnodes 2 --nproc-per-node 4 -m vidgrid train")


@pytest.mark.slow
def test_sigterm_to_torchrun_and_every_rank_checkpoints_and_hints_torchrun(tiny_config, tmp_path, started):
    from test_distributed import free_port
    from vidgrid.config import save_config

    cfg = tiny_config("multigrid.enabled=false", "train.batch_size=4", "train.epochs=50", "train.eval_every=0",
                      "train.checkpoint_every=2")
    save_config(cfg, tmp_path / "config.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "vidgrid", "train", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run"), "--resume", "auto"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started.append(proc)
    wait_for_checkpoint(proc, tmp_path / "run" / "checkpoints", 2)
    os.killpg(proc.pid, signal.SIGTERM)  # as SLURM does: torchrun and every rank; torchrun forwards it again
    stderr = finish(proc, timeout_s=90)
    assert "SIGTERM: stopped at epoch" in stderr, stderr
    assert "exitcode  : -15" not in stderr, stderr  # no rank was killed by the repeated signal
    assert f"resume with: torchrun --nproc-per-node 2 -m vidgrid train {tmp_path / 'run' / 'config.yaml'}" in stderr
    stopped = int(stderr.split("SIGTERM: stopped at epoch")[1].split("iteration ")[1].split(";")[0])
    assert load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])["train"]["state"]["iteration"] == stopped
