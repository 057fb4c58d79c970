"""Two-process gloo training on CPU: same shapes at every step, same weights at the end,
and a process that dies makes the other one stop with a clear error instead of hanging."""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from vidgrid.config import load_config, save_config
from vidgrid.engine.distributed import per_process_batch
from vidgrid.multigrid.schedule import schedule_from_config
from vidgrid.errors import ConfigError

TIMEOUT_S = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, config: str, out: str, die_at: int) -> None:
    """One training process, as torchrun would start it; records the input shape of every forward
    call and the final weights into ``out/rank<r>.pt`` (rank 1 exits abruptly at forward ``die_at``)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1", VIDGRID_DIST_TIMEOUT_S="60",
    )
    torch.set_num_threads(1)
    from vidgrid.engine import run as run_module
    from vidgrid.engine import trainer

    shapes: list[tuple[bool, tuple[int, ...]]] = []
    models = []
    build = run_module.build_model

    def recording(cfg, *, num_classes):
        model = build(cfg, num_classes=num_classes)

        def hook(module, args):
            shapes.append((module.training, tuple(args[0].shape)))
            if rank == 1 and len(shapes) == die_at:
                os._exit(3)  # a crash: no cleanup, no goodbye to the process group

        model.register_forward_pre_hook(hook)
        models.append(model)
        return model

    run_module.build_model = recording
    record: dict = {}
    try:
        record["summary"] = trainer.train(load_config(config), Path(out) / "run")
    except Exception as e:  # recorded for the test to inspect
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc()
    record.update(shapes=shapes, weights=models[0].state_dict() if models else {})
    torch.save(record, Path(out) / f"rank{rank}.pt")


def run_two_processes(config: Path, out: Path, *, die_at: int = 0) -> list[dict]:
    """Start ranks 0 and 1 (spawned, like torchrun's workers) and wait for both, at most TIMEOUT_S."""
    port = free_port()
    context = mp.get_context("spawn")
    procs = [context.Process(target=_worker, args=(r, 2, port, str(config), str(out), die_at)) for r in range(2)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for proc in procs:
            proc.join(timeout=max(deadline - time.monotonic(), 0))
        if any(proc.is_alive() for proc in procs):
            pytest.fail(f"the 2-process run did not finish within {TIMEOUT_S} s")
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2) if (out / f"rank{r}.pt").exists()]


@pytest.fixture
def config(tiny_config, tmp_path) -> Path:
    cfg = tiny_config("multigrid.enabled=true", "train.batch_size=2", "train.epochs=4", "train.eval_every=0")
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    return path


@pytest.mark.slow
def test_two_gloo_processes_step_in_lockstep_and_end_with_the_same_weights(config, tmp_path):
    ranks = run_two_processes(config, tmp_path)
    assert len(ranks) == 2 and all("error" not in r for r in ranks), [r.get("traceback") for r in ranks]
    train_shapes = [[shape for training, shape in r["shapes"] if training] for r in ranks]
    # training-mode forwards: every iteration, then precise BN's 10 batches of 1 clip (its half of the 20 videos)
    assert len(train_shapes[0]) == len(train_shapes[1]) == ranks[0]["summary"]["iterations"] + 10
    assert ranks[0]["summary"]["iterations"] > 3
    for step, (a, b) in enumerate(zip(*train_shapes)):
        assert a[1:] == b[1:], f"step {step}: {a} vs {b}"  # same (C, T, H, W) on both processes
        assert abs(a[0] - b[0]) <= 1  # each takes half of the global batch
    assert len({shape[2:] for shape in train_shapes[0]}) >= 3  # multigrid changed the shape
    assert ranks[0]["summary"]["processes"] == 2
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key
    assert (tmp_path / "run" / "summary.json").is_file()  # written by rank 0


@pytest.mark.slow
def test_a_dead_process_stops_the_other_with_a_clear_error(config, tmp_path):
    started = time.monotonic()
    ranks = run_two_processes(config, tmp_path, die_at=3)
    assert time.monotonic() - started < TIMEOUT_S
    assert [r for r in ranks if "summary" in r] == []
    (survivor,) = ranks  # rank 1 died without a record
    assert survivor["error"].startswith("DistributedError: rank 0: another training process died"), survivor["traceback"]


def test_batch_sizes_must_divide_across_processes():
    assert per_process_batch(64, 4) == 16
    with pytest.raises(ConfigError, match=r"'train.batch_size' = 6: expected a multiple of the 4 processes"):
        schedule_from_config(load_config(None, ["train.batch_size=6", "multigrid.enabled=true"]), processes=4)


def _freeze_worker(rank: int, port: int, out: str) -> None:
    """Two sibling-network steps, then the box head's early stop, then both heads' (rank 0 records)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    from vidgrid.config import TaskConfig
    from vidgrid.engine.distributed import DistEnv, wrap_ddp
    from vidgrid.models import create_model
    from vidgrid.tasks.sibling import Sibling

    torch.manual_seed(0)
    task = Sibling(["a", "b", "c"], TaskConfig(name="sibling", patience=1))
    net = task.attach(create_model("x3d_xs", num_classes=3, width_factor=0.25))
    ddp = wrap_ddp(net, DistEnv(rank, 2, rank, torch.device("cpu")), find_unused_parameters=task.freezes_parameters)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    clips = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(rank))
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.2, 0.2, 0.6, 0.7, 1.0, 32.0]] * 2)  # one-hot class, box, visible, side
    record: dict = {}
    try:
        for step in range(6):
            if step == 2:
                task.after_validation(net, improved=["top1"])  # the box head stops (patience 1)
                record["box_at_freeze"] = {k: v.clone() for k, v in net.head["box"].state_dict().items()}
            if step == 4:
                task.after_validation(net, improved=[])  # and the classifier: every head has stopped
            task.loss(ddp(clips), targets).backward()
            optimizer.step()
            optimizer.zero_grad()
        record["weights"] = {k: v.detach().clone() for k, v in net.named_parameters()}
        record["frozen"] = net.frozen.tolist()
    except Exception as e:  # recorded for the test to inspect
        record["error"] = f"{type(e).__name__}: {e}"
    torch.save(record, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_a_head_frozen_by_early_stop_keeps_two_processes_training(tmp_path):
    port = free_port()
    procs = [mp.get_context("spawn").Process(target=_freeze_worker, args=(r, port, str(tmp_path))) for r in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=TIMEOUT_S)
        assert not proc.is_alive(), "the 2-process steps did not finish"
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert all("error" not in r for r in ranks), [r.get("error") for r in ranks]
    weights = ranks[0]["weights"]
    for key, value in weights.items():  # the processes stayed in step
        assert torch.equal(value, ranks[1]["weights"][key]), key
    assert ranks[0]["frozen"] == ranks[1]["frozen"] == [True, True]
    for key, value in ranks[0]["box_at_freeze"].items():  # a frozen head does not move (no momentum, no decay)
        assert torch.equal(weights[f"head.box.{key}"], value), key
