"""Consecutive epochs' batch samplers as one batch sampler, so one DataLoader serves the whole run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from vidgrid.multigrid.sampler import ShortCycleBatchSampler
from vidgrid.types import ClipShape


class EpochChain:
    """Consecutive epochs' batches as one stream of ``(index, shape, epoch)`` lists.

    One DataLoader iterator over the chain runs across epoch boundaries, so its workers decode the
    next epoch's first batches while the training loop finishes the current one; a loader per epoch
    would idle at every boundary until its first batch is decoded. ``len()`` and :attr:`lengths`
    count the batches each sampler has left at creation (the first one's may be resumed mid-epoch).
    """

    def __init__(self, samplers: Sequence[ShortCycleBatchSampler]) -> None:
        self.samplers = tuple(samplers)
        self.lengths = tuple(len(s) for s in self.samplers)

    def __len__(self) -> int:
        return sum(self.lengths)

    def __iter__(self) -> Iterator[list[tuple[int, ClipShape, int]]]:
        for sampler in self.samplers:
            epoch = sampler.epoch
            for batch in sampler:
                yield [(index, shape, epoch) for index, shape in batch]
