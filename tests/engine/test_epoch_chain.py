"""One batch sampler over consecutive epochs' samplers: a resumed epoch's rest, then whole epochs."""

import pytest
import torch
from torch.utils.data import DataLoader

from tests.multigrid.test_sampler import STEPS, ShapeDataset
from vidgrid.engine.epoch_chain import EpochChain
from vidgrid.multigrid.sampler import ShortCycleBatchSampler
from vidgrid.multigrid.schedule import ShortCycleStep
from vidgrid.types import ClipShape


def test_epoch_chain_streams_the_epochs_with_their_numbers():
    """One loader over the chain serves a resumed epoch's rest, then whole epochs, each clip named
    with its epoch (the dataset's augmentation draws depend on it)."""
    coarse = (ShortCycleStep(ClipShape(2, 16), 48), ShortCycleStep(ClipShape(2, 22), 24))
    samplers = []
    for epoch, steps in ((3, STEPS), (4, STEPS), (5, coarse)):
        sampler = ShortCycleBatchSampler(100, steps, seed=1)
        sampler.set_epoch(epoch)
        samplers.append(sampler)
    whole = [list(s) for s in samplers]
    samplers[0].load_state_dict(samplers[0].state_dict(consumed=2))
    chain = EpochChain(samplers)
    assert chain.lengths == (len(whole[0]) - 2, len(whole[1]), len(whole[2]))
    expected = [[(i, shape, epoch) for i, shape in batch] for epoch, batches in zip((3, 4, 5), (whole[0][2:], *whole[1:])) for batch in batches]
    assert list(chain) == expected
    samplers[0].load_state_dict(samplers[0].state_dict(consumed=2))
    loader = DataLoader(ShapeDataset(), batch_sampler=EpochChain(samplers), num_workers=1)
    shapes = [tuple(clips.shape[2:]) for clips, _ in loader]
    assert shapes == [(b[0][1].frames, b[0][1].crop, b[0][1].crop) for b in expected]


class CachingDataset(ShapeDataset):
    """Counts its own "decodes": an index seen before in this process is served from memory."""

    def __init__(self):
        self.seen = set()

    def __getitem__(self, item):
        clips, index = super().__getitem__(item)
        fresh = index not in self.seen
        self.seen.add(index)
        return clips, torch.tensor(int(fresh))


def test_batches_after_an_epoch_are_served_by_the_epochs_workers():
    """Precise BN's base-shape batches follow their epoch in the stream, from the same worker: its
    decoded videos are still in memory (a loader of their own would decode every video again)."""
    base = ClipShape(8, 64)
    samplers = []
    for epoch in (0, 1):
        sampler = ShortCycleBatchSampler(30, STEPS, seed=1)
        sampler.set_epoch(epoch)
        samplers.append(sampler)
    after = [[], [[(i, base, 2) for i in range(k, k + 6)] for k in range(0, 30, 6)]]
    chain = EpochChain(samplers, after=after)
    assert chain.after_lengths == (0, 5) and len(chain) == sum(chain.lengths) + 5
    stream = list(chain)
    assert stream[-5:] == after[1] and stream[: chain.lengths[0]] == [[(i, s, 0) for i, s in b] for b in samplers[0]]
    loaded = list(DataLoader(CachingDataset(), batch_sampler=chain, num_workers=1))
    fresh = [int(flags.sum()) for _, flags in loaded]
    assert sum(fresh[: chain.lengths[0]]) == 30 and sum(fresh[chain.lengths[0]:]) == 0  # epoch 0 read all 30
    assert [tuple(clips.shape[2:]) for clips, _ in loaded[-5:]] == [(8, 64, 64)] * 5
    with pytest.raises(ValueError, match="1 lists of batches after the epochs, for 2 epochs"):
        EpochChain(samplers, after=[[]])
