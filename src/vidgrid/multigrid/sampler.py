"""The short-cycle batch sampler (multigrid paper §3.2 "Short Cycle").

It yields lists of ``(index, ClipShape)`` for :class:`~vidgrid.data.dataset.VideoClipDataset`:
iteration i of an epoch uses short-cycle position i mod len(steps), i.e. that position's clip shape
and batch size. Every process computes the same plan from (seed, epoch) — one permutation of the
dataset cut into global batches (:func:`~vidgrid.multigrid.schedule.epoch_plan`) — and takes its own
contiguous share of each global batch, so the processes' indices are disjoint, every index is used
exactly once per epoch, and all processes use the same shape at the same iteration.

Coverage rather than ``drop_last``: the last batch of an epoch holds what is left (possibly fewer
clips, split across processes as evenly as possible, sizes differing by at most one); fewer than
one clip per process left over joins the previous batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from vidgrid.errors import CheckpointError
from vidgrid.multigrid.schedule import ShortCycleStep, epoch_plan
from vidgrid.types import ClipShape


class ShortCycleBatchSampler:
    """Batches of ``(index, shape)`` for one process, following a segment's short cycle.

    ``steps``: the short-cycle positions with their *global* batches (each a multiple of
    ``world_size``); a single step is plain fixed-shape training. Call :meth:`set_epoch` before each
    epoch. ``len()`` is the number of batches the next pass yields (the whole epoch unless resumed
    mid-epoch); :attr:`batches_per_epoch` is the whole epoch's.
    """

    def __init__(
        self,
        dataset_size: int,
        steps: Sequence[ShortCycleStep],
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        if not steps or any(s.global_batch % world_size for s in steps):
            raise ValueError(f"global batches {[s.global_batch for s in steps]} must be multiples of {world_size}")
        self.dataset_size = dataset_size
        self.steps = tuple(steps)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0
        """Batch of the epoch the next pass begins with (non-zero when resumed mid-epoch)."""
        self._plan = epoch_plan(dataset_size, [s.global_batch for s in self.steps], world_size)

    @property
    def batches_per_epoch(self) -> int:
        return len(self._plan)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation; a new epoch starts at its first batch."""
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def __len__(self) -> int:
        return len(self._plan) - self.start

    def shape_at(self, iteration: int) -> ClipShape:
        """Clip shape of batch ``iteration`` of an epoch (the same on every process)."""
        return self.steps[iteration % len(self.steps)].shape

    def __iter__(self) -> Iterator[list[tuple[int, ClipShape]]]:
        order = self._order()
        offsets = np.concatenate([[0], np.cumsum(self._plan)])
        for i in range(self.start, len(self._plan)):
            lo, hi = _share(int(offsets[i]), self._plan[i], self.rank, self.world_size)
            shape = self.shape_at(i)
            yield [(int(index), shape) for index in order[lo:hi]]
        self.start = 0

    def _order(self) -> np.ndarray:
        """The epoch's permutation of the dataset, identical on every process."""
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.dataset_size)

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Position to resume from. A DataLoader fetches batches ahead of the training loop, so pass
        ``consumed`` = batches of this epoch the loop has finished (default: ``start``)."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "start": self.start if consumed is None else consumed,
            "global_batches": [s.global_batch for s in self.steps],
            "dataset_size": self.dataset_size,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved epoch at its saved batch, with the same indices and shapes."""
        mine = self.state_dict()
        for key in ("global_batches", "dataset_size", "world_size"):
            if list(np.atleast_1d(state[key])) != list(np.atleast_1d(mine[key])):
                raise CheckpointError(f"sampler state: saved {key} {state[key]} != this run's {mine[key]}")
        if not 0 <= state["start"] <= len(self._plan):
            raise CheckpointError(f"sampler state: batch {state['start']} outside an epoch of {len(self._plan)}")
        self.seed, self.epoch, self.start = state["seed"], state["epoch"], state["start"]


def _share(offset: int, size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank's contiguous slice of a global batch at ``offset``: sizes differ by at most one."""
    q, r = divmod(size, world_size)
    lo = offset + rank * q + min(rank, r)
    return lo, lo + q + (rank < r)
