"""The informative loss over the global batch: two gloo processes gather their embeddings with gradient."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vidgrid.tasks.multitrain import gather_with_grad, informative_loss

WORLD = 2
ROWS = (0, 5, 9)
"""Rows of each process: 5 and 4 (an epoch's last batch may differ by one clip between processes)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embeddings() -> torch.Tensor:
    return torch.randn(9, 6, generator=torch.Generator().manual_seed(0))


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        mine = embeddings()[ROWS[rank] : ROWS[rank + 1]].clone().requires_grad_(True)
        total, _, _ = informative_loss(gather_with_grad(mine), variance_weight=25.0, covariance_weight=1.0)
        total.backward()
        torch.save({"loss": total.detach(), "grad": mine.grad}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_informative_loss_of_gathered_shards_equals_the_global_batch_and_its_gradient(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    full = embeddings().requires_grad_(True)
    expected, _, _ = informative_loss(full, variance_weight=25.0, covariance_weight=1.0)
    expected.backward()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
        # DDP averages the processes' parameter gradients, so each process's rows must carry the
        # gradient of every process's copy of the loss: WORLD × the global batch's
        assert torch.allclose(got["grad"], WORLD * full.grad[ROWS[rank] : ROWS[rank + 1]], atol=1e-6)
