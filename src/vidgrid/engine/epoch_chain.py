"""Consecutive epochs' batch samplers as one batch sampler, so one DataLoader serves the whole run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from vidgrid.multigrid.sampler import ShortCycleBatchSampler
from vidgrid.types import ClipShape

Batches = Sequence[list[tuple[int, ClipShape, int]]]
"""Batches of ``(index, shape, epoch)``: the dataset's clip, its shape and the epoch of its draws."""


class EpochChain:
    """Consecutive epochs' batches as one stream of ``(index, shape, epoch)`` lists.

    One DataLoader iterator over the chain runs across epoch boundaries, so its workers decode the
    next epoch's first batches while the training loop finishes the current one; a loader per epoch
    would idle at every boundary until its first batch is decoded. ``after[k]``: batches that follow
    sampler k's epoch (precise BN's base-shape clips before a validation), served by the same workers,
    whose decoded-video caches are warm. :attr:`lengths` counts the batches each sampler has left at
    creation (the first one's may be resumed mid-epoch), :attr:`after_lengths` those of ``after``.
    """

    def __init__(self, samplers: Sequence[ShortCycleBatchSampler], after: Sequence[Batches] = ()) -> None:
        self.samplers = tuple(samplers)
        self.after = tuple(after) or ((),) * len(self.samplers)
        if len(self.after) != len(self.samplers):
            raise ValueError(f"{len(self.after)} lists of batches after the epochs, for {len(self.samplers)} epochs")
        self.lengths = tuple(len(s) for s in self.samplers)
        self.after_lengths = tuple(len(batches) for batches in self.after)

    def __len__(self) -> int:
        return sum(self.lengths) + sum(self.after_lengths)

    def __iter__(self) -> Iterator[list[tuple[int, ClipShape, int]]]:
        for sampler, after in zip(self.samplers, self.after):
            epoch = sampler.epoch
            for batch in sampler:
                yield [(index, shape, epoch) for index, shape in batch]
            yield from after
