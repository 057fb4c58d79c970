"""Sub-batch BatchNorm (multigrid paper §3.2 "Batch Normalization"; X3D supplement §A.3: "BN over
8 clips", baseline runs too) and its grouping of clips over processes.

The statistics are computed over *groups* of clips: the per-process long-cycle batch is split into
groups of ``bn_base_size`` (8) clips, and the short cycle keeps the number of groups, so its 2× and 4×
larger batches get groups of 16 and 32 clips. A process holding fewer clips than a group pools its
statistics with the smallest group of consecutive processes that divides the world size and holds
``bn_base_size`` clips (all processes if none does; PySlowFast's ``BN.NUM_SYNC_DEVICES``):
:func:`bn_grouping` is that arithmetic, :mod:`vidgrid.engine.distributed` builds the process groups.

:class:`SubBatchNorm3d` is an ``nn.BatchNorm3d`` (same parameters, buffers and state-dict keys, so
checkpoints load into models without it) whose training forward normalises each group with that
group's statistics. Its running statistics are the *merged* statistics of all groups, updated at every
step — mean of the group means; mean of the group variances plus the variance of the group means (law
of total variance) — so eval mode is plain BN with population statistics, and the number of groups can
change at any segment switch without a merge step.

Group k holds clips k, k+g, k+2g, … of the batch (a free view ``(N, C, …) -> (N/g, g·C, …)``; the
batch order is random, so which clips share a group does not matter). A batch of N clips that g does
not divide (e.g. an epoch's smaller last batch) uses the largest number of groups ≤ g that divides N
and leaves every group more than one value per channel (a prime N falls back to plain BN).

With a ``process_group``, the per-channel sums and sums of squares of this process's clips are summed
over the processes of the group (a differentiable all-reduce, so the gradients are those of BN over
the group's clips), as PySlowFast's ``NaiveSyncBatchNorm3d`` does; the synchronised statistics update
the running ones on every process alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BNGrouping:
    """How one long-cycle batch is grouped for BatchNorm statistics."""

    local_groups: int
    """Groups within one process's clips (1 when processes are grouped)."""
    processes: int
    """Consecutive processes whose clips form one group (1: every process on its own)."""

    def process_groups(self, world_size: int) -> list[list[int]]:
        """The ranks of each group of processes: ``[[0, 1], [2, 3], ...]``."""
        return [list(range(start, start + self.processes)) for start in range(0, world_size, self.processes)]


def bn_grouping(per_process_clips: int, *, world_size: int, bn_base_size: int) -> BNGrouping:
    """The grouping of a long-cycle batch of ``per_process_clips`` clips on each of ``world_size``
    processes into BN groups of ``bn_base_size`` clips (see the module docstring)."""
    if per_process_clips < 1 or world_size < 1 or bn_base_size < 1:
        raise ValueError(f"expected positive sizes, got {per_process_clips}, {world_size}, {bn_base_size}")
    if per_process_clips >= bn_base_size or world_size == 1:
        return BNGrouping(local_groups=max(1, per_process_clips // bn_base_size), processes=1)
    sizes = [k for k in range(1, world_size + 1) if world_size % k == 0 and k * per_process_clips >= bn_base_size]
    return BNGrouping(local_groups=1, processes=sizes[0] if sizes else world_size)


class _AllReduceSum(torch.autograd.Function):
    """Sum over a process group whose backward sums the gradients likewise (each process's loss
    depends on every process's input through the shared statistics)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup) -> torch.Tensor:
        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class SubBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d whose training statistics are computed over ``num_groups`` groups of the batch, or
    over the clips of all processes of ``process_group``."""

    def __init__(self, *args, num_groups: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_groups = num_groups
        self.process_group: dist.ProcessGroup | None = None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_groups={self.num_groups}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.process_group is not None:
            return self._synchronised(x)
        groups = _groups_dividing(x.shape[0], self.num_groups, values_per_clip=x[0, 0].numel())
        if not self.training or groups == 1:
            return super().forward(x)
        self._check_input_dim(x)
        n, c = x.shape[:2]
        # (N, C, T, H, W) -> (N/g, g·C, T, H, W): channel j·C + c holds clips j, j+g, ... of channel c
        grouped = x.reshape(n // groups, groups * c, *x.shape[2:])
        mean = x.new_zeros(groups * c, dtype=torch.float32) if self.track_running_stats else None
        var = x.new_ones(groups * c, dtype=torch.float32) if self.track_running_stats else None
        y = F.batch_norm(grouped, mean, var, None, None, True, 1.0, self.eps)  # mean/var <- group stats
        y = y.reshape(x.shape)
        if self.track_running_stats:
            self._update_running_stats(mean.view(groups, c), var.view(groups, c), x.numel() // c, groups)
        if self.affine:
            shape = (1, c) + (1,) * (x.dim() - 2)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    def _synchronised(self, x: torch.Tensor) -> torch.Tensor:
        """Training forward with statistics over the clips of every process in ``process_group``."""
        self._check_input_dim(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), xf.new_full((1,), x.numel() // c)])
        total = _AllReduceSum.apply(local, self.process_group)  # (2C + 1,) summed over the group
        count = total[-1]
        mean = total[:c] / count
        var = (total[c : 2 * c] / count - mean * mean).clamp_min(0)  # biased
        shape = (1, c) + (1,) * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.track_running_stats:
            n = int(count.item())
            self._update_running_stats(mean.detach()[None], var.detach()[None] * n / max(n - 1, 1), n, 1)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, means: torch.Tensor, unbiased: torch.Tensor, count: int, groups: int) -> None:
        """Merge the (groups, C) statistics over groups and fold them into the running buffers like
        plain BN would for the whole batch: mean of means; mean of variances + variance of means."""
        per_group = count // groups
        variances = unbiased * (per_group - 1) / per_group  # biased variance of each group
        mean = means.mean(0)
        var = variances.mean(0) + means.var(0, unbiased=False)
        var = var * count / max(count - 1, 1)  # unbiased, as nn.BatchNorm stores it
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(var.to(self.running_var.dtype), momentum)


def _groups_dividing(batch: int, groups: int, *, values_per_clip: int) -> int:
    """The largest number of groups ≤ ``groups`` that divides ``batch`` evenly into groups with more
    than one value per channel (1 if none does)."""
    fits = (g for g in range(min(groups, batch), 1, -1) if batch % g == 0 and batch // g * values_per_clip > 1)
    return next(fits, 1)


def convert_to_sub_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm3d`` of ``model`` in place by a :class:`SubBatchNorm3d` sharing its
    parameters and buffers (one group until :func:`set_bn_groups`). Returns ``model``."""
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm3d:
            sub = SubBatchNorm3d(
                child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                track_running_stats=child.track_running_stats,
            )
            sub._parameters, sub._buffers = child._parameters, child._buffers
            sub.train(child.training)
            setattr(model, name, sub)
        else:
            convert_to_sub_batch_norm(child)
    return model


def set_bn_groups(model: nn.Module, num_groups: int, process_group: dist.ProcessGroup | None = None) -> None:
    """Set the number of statistics groups of every :class:`SubBatchNorm3d` in ``model``, or (with
    ``process_group``) the processes whose clips form one group."""
    if num_groups < 1:
        raise ValueError(f"num_groups {num_groups} < 1")
    for module in model.modules():
        if isinstance(module, SubBatchNorm3d):
            module.num_groups = num_groups
            module.process_group = process_group
