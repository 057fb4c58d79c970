"""Distributed and checkpoint figures: clips/s of DDP training with 1 vs 2 processes
(gloo on CPU, NCCL on GPUs), and the time to write and to load a full training checkpoint of X3D-M
and MViTv2-S.

    python benchmarks/bench_ddp.py [--model x3d_xs] [--frames 8] [--crop 64] [--batch 16] [--steps 6]

The DDP figure measures the training step alone (random uint8 clips, no decoding), with the global
batch split over the processes, each process using ``cores // processes`` threads.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, args: argparse.Namespace, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    from vidgrid.engine import distributed as D
    from vidgrid.engine.device import normalize_clip
    from vidgrid.models import create_model

    env = D.init_distributed(args.device)
    if env.device.type == "cpu":
        torch.set_num_threads(D.cpu_threads(0))
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10).to(env.device)
    net = D.wrap_ddp(model, env)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    per_process = D.per_process_batch(args.batch, world)
    clips = torch.randint(0, 256, (per_process, 3, args.frames, args.crop, args.crop), dtype=torch.uint8, device=env.device)
    targets = torch.randint(0, 10, (per_process,), device=env.device)
    for step in range(args.steps + 2):  # 2 warm-up steps
        if step == 2:
            D.barrier()
            started = time.perf_counter()
        x = normalize_clip(clips, (0.45,) * 3, (0.225,) * 3)
        loss = torch.nn.functional.cross_entropy(net(x), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    D.barrier()
    if env.is_main:
        results[world] = args.batch * args.steps / (time.perf_counter() - started)
    D.shutdown()


def bench_ddp(args: argparse.Namespace) -> None:
    results = mp.Manager().dict()
    for world in (1, 2):
        mp.spawn(_ddp_worker, args=(world, _free_port(), args, results), nprocs=world, join=True)
        print(f"DDP {args.model} {args.frames}x{args.crop}², global batch {args.batch}: "
              f"{world} process(es): {results[world]:.1f} clips/s", flush=True)
    print(f"speed-up 2 vs 1 processes: {results[2] / results[1]:.2f}x")


def bench_checkpoint(name: str) -> None:
    from vidgrid.config import Config, config_to_dict
    from vidgrid.engine.checkpoint import load_checkpoint, write_checkpoint
    from vidgrid.models import create_model

    model = create_model(name, num_classes=400)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for p in model.parameters():  # momentum buffers exist after one step, as in a real run
        p.grad = torch.zeros_like(p)
    optimizer.step()
    state = {
        "model": model.state_dict(), "config": config_to_dict(Config()), "classes": [str(i) for i in range(400)],
        "epoch": 1, "iteration": 1, "train": {"optimizer": optimizer.state_dict()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = write_checkpoint(state, Path(tmp), keep=1)
        written = time.perf_counter() - started
        started = time.perf_counter()
        load_checkpoint(path)
        loaded = time.perf_counter() - started
        size = path.stat().st_size / 2**20
    print(f"checkpoint {name}: {size:.0f} MiB, write (atomic, fsync) {written:.2f} s, load (weights_only) {loaded:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x3d_xs")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other processes skew these figures)")
    bench_ddp(args)
    for name in ("x3d_m", "mvitv2_s_16x4"):
        bench_checkpoint(name)


if __name__ == "__main__":
    main()
