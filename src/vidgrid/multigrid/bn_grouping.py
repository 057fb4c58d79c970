"""Which clips share BatchNorm statistics, whatever the split of a batch over processes (multigrid
paper §3.2: statistics over groups of 8 clips, 16 and 32 under the short cycle; X3D supplement §A.3:
"BN over 8 clips" for the baseline too).

A process holding at least ``bn_base_size`` clips of the long-cycle batch splits them into
``clips // bn_base_size`` groups of its own; a process holding fewer joins a group of consecutive
processes whose clips together make one group — the smallest number of processes that divides the
world size and holds at least ``bn_base_size`` clips (all processes if none does). PySlowFast calls
this ``BN.NUM_SYNC_DEVICES``. The short cycle keeps the grouping, so its 2× and 4× larger batches get
2× and 4× larger groups. Pure arithmetic; :mod:`vidgrid.engine.distributed` builds the process groups.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def clips_per_group(self, per_process_clips: int) -> int:
        """Clips whose statistics one BN group pools."""
        return per_process_clips * self.processes // self.local_groups


def bn_grouping(per_process_clips: int, *, world_size: int, bn_base_size: int) -> BNGrouping:
    """The grouping of a long-cycle batch of ``per_process_clips`` clips on each of ``world_size``
    processes into BN groups of ``bn_base_size`` clips (see the module docstring)."""
    if per_process_clips < 1 or world_size < 1 or bn_base_size < 1:
        raise ValueError(f"expected positive sizes, got {per_process_clips}, {world_size}, {bn_base_size}")
    if per_process_clips >= bn_base_size or world_size == 1:
        return BNGrouping(local_groups=max(1, per_process_clips // bn_base_size), processes=1)
    sizes = [k for k in range(1, world_size + 1) if world_size % k == 0 and k * per_process_clips >= bn_base_size]
    return BNGrouping(local_groups=1, processes=sizes[0] if sizes else world_size)
