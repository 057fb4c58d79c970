"""BatchNorm groups of bn_base_size clips whatever the split over processes (multigrid paper §3.2;
X3D supplement §A.3): arithmetic for world sizes 1-128, and a 2-process gloo run of the synchronised
groups against plain BN over the same clips."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from vidgrid.engine.subbatch_bn import BNGrouping, bn_grouping


@pytest.mark.parametrize("world", range(1, 129))
def test_groups_hold_at_least_a_base_group_with_the_fewest_processes(world: int) -> None:
    for clips in (1, 2, 3, 4, 6, 8, 12, 16, 32, 64):
        g = bn_grouping(clips, world_size=world, bn_base_size=8)
        ranks = [r for group in g.process_groups(world) for r in group]
        assert ranks == list(range(world)) and world % g.processes == 0
        assert all(len(group) == g.processes for group in g.process_groups(world))
        if clips >= 8:  # groups within a process, of 8 to 15 clips; never across processes
            assert g.processes == 1 and g.local_groups == clips // 8 and 8 <= clips * g.processes // g.local_groups < 16
        elif clips * world < 8:  # the whole world holds less than one group
            assert g == BNGrouping(local_groups=1, processes=world)
        else:  # the smallest group of processes that divides the world and holds 8 clips
            assert g.local_groups == 1 and clips * g.processes // g.local_groups >= 8
            assert not any(world % k == 0 and k * clips >= 8 for k in range(1, g.processes))


def test_the_paper_s_recipes() -> None:
    # SlowFast on 128 GPUs, 4 clips each: pairs of processes (8 clips), not the 512-clip world
    assert bn_grouping(4, world_size=128, bn_base_size=8) == BNGrouping(local_groups=1, processes=2)
    # its coarsest long-cycle shape has 8x the batch: 32 clips per process, 4 groups of 8 inside it
    assert bn_grouping(32, world_size=128, bn_base_size=8) == BNGrouping(local_groups=4, processes=1)
    # X3D on 128 GPUs, 8 clips each (supplement §A.3): one group per process
    assert bn_grouping(8, world_size=128, bn_base_size=8) == BNGrouping(local_groups=1, processes=1)
    # SSv2 on 8 GPUs, 2 clips each: groups of 4 processes
    assert bn_grouping(2, world_size=8, bn_base_size=8) == BNGrouping(local_groups=1, processes=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bn_worker(rank: int, world: int, port: int, clips: torch.Tensor, out: str) -> None:
    """Each process holds 4 of the 8 clips; the BN group is both processes (8 clips)."""
    import torch.distributed as dist

    from vidgrid.engine.distributed import DistEnv, set_bn_grouping
    from vidgrid.engine.subbatch_bn import convert_to_sub_batch_norm

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = convert_to_sub_batch_norm(nn.Sequential(nn.BatchNorm3d(3)))
        env = DistEnv(rank=rank, world_size=world, local_rank=rank, device=torch.device("cpu"))
        grouping = set_bn_grouping(model, env, base_batch=8, bn_base_size=8)
        mine = clips[4 * rank : 4 * rank + 4].clone().requires_grad_()
        y = model.train()(mine)
        (y * torch.arange(y.numel()).view_as(y)).sum().backward()  # a loss that weighs every output
        torch.save({"grouping": grouping, "y": y.detach(), "grad": mine.grad, "state": model.state_dict()},
                   f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_gloo_processes_normalise_over_their_joint_clips(tmp_path) -> None:
    clips = torch.randn(8, 3, 2, 4, 4) * 3 + 1
    mp.spawn(_bn_worker, args=(2, _free_port(), clips, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["grouping"] == BNGrouping(local_groups=1, processes=2)
    reference = nn.BatchNorm3d(3).train()
    x = clips.clone().requires_grad_()
    y = reference(x)
    weights = torch.cat([torch.arange(y[:4].numel()).view_as(y[:4])] * 2)
    (y * weights).sum().backward()
    assert torch.allclose(torch.cat([r["y"] for r in ranks]), y.detach(), atol=1e-5)
    assert torch.allclose(torch.cat([r["grad"] for r in ranks]), x.grad, atol=1e-4)
    for r in ranks:
        assert torch.allclose(r["state"]["0.running_mean"], reference.running_mean, atol=1e-6)
        assert torch.allclose(r["state"]["0.running_var"], reference.running_var, atol=1e-5)
