"""One batch sampler over consecutive epochs' samplers: a resumed epoch's rest, then whole epochs."""

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
