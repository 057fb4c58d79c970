"""All of vidgrid's torch.distributed code.

``torchrun --nproc-per-node N -m vidgrid train ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`init_distributed` reads them and joins the process group (NCCL on GPUs, gloo on CPU) with a
bounded timeout, so a process that dies makes the others stop with a clear error instead of hanging.
A plain ``vidgrid train`` is a world of one and none of this code talks to anyone.

Batch sizes are global in the config (the paper's B); each process takes ``global / world_size``
clips, and every batch size the multigrid schedule uses is checked to divide up front.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, Literal

import torch
import torch.distributed as dist
from torch import nn

from vidgrid.errors import ConfigError, VidgridError, first_line
from vidgrid.engine.subbatch_bn import BNGrouping, bn_grouping, set_bn_groups

TIMEOUT = timedelta(seconds=int(os.environ.get("VIDGRID_DIST_TIMEOUT_S", "600")))
"""How long a collective waits for a silent peer before every process gives up."""


_PEER_LOST = ("Connection closed", "Connection reset", "Broken pipe", "timed out", "Timed out", "Timeout", "NCCL")
"""What gloo and NCCL errors say when a peer died or stopped answering."""


class DistributedError(VidgridError):
    """Another training process died or stopped answering."""


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, plots and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(kind: Literal["auto", "cpu", "cuda"], local_rank: int) -> torch.device:
    """``auto`` = CUDA when available; each process on a machine takes GPU ``LOCAL_RANK``."""
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("'train.device' = 'cuda': no CUDA device is available (use 'auto' or 'cpu')")
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads(workers: int) -> int:
    """Intra-op threads of a CPU training process: the cores left to it once the loader workers and the
    other processes on this machine have theirs (more threads than free cores makes OpenMP spin)."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, available_cores() // local_processes - workers)


def init_distributed(device_kind: Literal["auto", "cpu", "cuda"] = "auto") -> DistEnv:
    """Join the process group torchrun describes in the environment (or stay a world of one)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_kind, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise DistributedError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start with torchrun")
        # NCCL: surface a dead peer as an error on the others instead of a hang
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=TIMEOUT)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def peers_alive(env: DistEnv) -> Iterator[None]:
    """Turn a collective that failed because a peer died or timed out into one clear error line."""
    try:
        yield
    except RuntimeError as e:
        lost = isinstance(e, dist.DistError) or any(s in str(e) for s in _PEER_LOST)
        if not env.distributed or not lost:
            raise
        raise DistributedError(
            f"rank {env.rank}: another training process died or stopped answering within "
            f"{int(TIMEOUT.total_seconds())} s ({first_line(e)}); see its log, then resume with --resume auto"
        ) from e


# --------------------------------------------------------------------------------------------------
# batch sizes


def per_process_batch(global_batch: int, world_size: int, *, what: str = "train.batch_size") -> int:
    """Clips per process for a global batch; a batch that does not divide is a ConfigError."""
    if global_batch % world_size:
        raise ConfigError(
            f"'{what}' = {global_batch}: the global batch must be a multiple of the {world_size} processes"
        )
    return global_batch // world_size


# --------------------------------------------------------------------------------------------------
# collectives


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over all processes (returned, not in place; identity in a world of one)."""
    if not dist.is_initialized():
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any (stop requests, non-finite losses)."""
    if not dist.is_initialized():
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


@torch.no_grad()
def average_buffers(model: nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over the processes, so that
    every process evaluates with the same statistics, gathered from all the data."""
    if not dist.is_initialized():
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(dist.get_world_size())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every process."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: object) -> list[object]:
    """``obj`` from every process, in rank order (a list of one in a world of one)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------------------
# model wrapping


_BN_PROCESS_GROUPS: dict[int, dist.ProcessGroup] = {}
"""This process's BN process group for each group size used so far (created once, collectively)."""


def bn_process_group(env: DistEnv, grouping: BNGrouping) -> dist.ProcessGroup | None:
    """The group of processes this process pools BN statistics with, or None when it pools alone.
    Every process must call this at the same point: ``new_group`` is a collective over all ranks,
    which create every group of a size (in rank order) and keep their own."""
    if not env.distributed or grouping.processes == 1:
        return None
    if grouping.processes not in _BN_PROCESS_GROUPS:
        for ranks in grouping.process_groups(env.world_size):
            group = dist.new_group(ranks)
            if env.rank in ranks:
                _BN_PROCESS_GROUPS[grouping.processes] = group
    return _BN_PROCESS_GROUPS[grouping.processes]


def set_bn_grouping(model: nn.Module, env: DistEnv, base_batch: int, *, bn_base_size: int) -> BNGrouping:
    """Group the sub-batch BN layers of ``model`` for a global long-cycle batch of ``base_batch`` clips:
    groups of ``bn_base_size`` clips within a process, or across a group of processes when a process
    holds fewer (:func:`~vidgrid.engine.subbatch_bn.bn_grouping`)."""
    per_process_clips = max(1, base_batch // env.world_size)
    grouping = bn_grouping(per_process_clips, world_size=env.world_size, bn_base_size=bn_base_size)
    set_bn_groups(model, grouping.local_groups, bn_process_group(env, grouping))
    return grouping


def wrap_ddp(model: nn.Module, env: DistEnv, *, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel in a multi-process run; the model itself otherwise.
    ``find_unused_parameters``: parameters may stop getting gradients mid-run (a frozen head), which
    DDP must then look for each step instead of waiting for their gradients."""
    if not env.distributed:
        return model
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    # buffers (BN statistics) follow rank 0
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
