"""The short-cycle batch sampler: coverage, shapes per iteration, sharding, determinism, resume."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vidgrid.errors import CheckpointError
from vidgrid.multigrid.sampler import ShortCycleBatchSampler
from vidgrid.multigrid.schedule import ShortCycleStep, epoch_plan
from vidgrid.types import ClipShape

STEPS = (
    ShortCycleStep(ClipShape(8, 32), 24),
    ShortCycleStep(ClipShape(8, 45), 12),
    ShortCycleStep(ClipShape(8, 64), 6),
)


def batches(size, world, *, epoch=0, seed=0, steps=STEPS):
    out = []
    for rank in range(world):
        sampler = ShortCycleBatchSampler(size, steps, seed=seed, rank=rank, world_size=world)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
        assert len(out[-1]) == len(sampler) == sampler.batches_per_epoch
    return out


@pytest.mark.parametrize("size, world", [(100, 1), (100, 2), (101, 3), (7, 6), (42, 3)])
def test_every_index_once_and_same_shapes_on_every_process(size, world):
    per_rank = batches(size, world)
    indices = [i for rank in per_rank for batch in rank for i, _ in batch]
    assert sorted(indices) == list(range(size))
    assert len({len(rank) for rank in per_rank}) == 1
    for it, group in enumerate(zip(*per_rank)):
        shapes = {shape for batch in group for _, shape in batch}
        assert shapes == {STEPS[it % 3].shape}  # short-cycle position i mod 3
        assert all(batch for batch in group)  # no process gets an empty batch
        assert max(map(len, group)) - min(map(len, group)) <= 1


def test_batch_sizes_follow_the_short_cycle():
    (rank0,) = batches(100, 1)
    assert [len(b) for b in rank0] == epoch_plan(100, [24, 12, 6], 1) == [24, 12, 6, 24, 12, 6, 16]
    rank0, _ = batches(100, 2)
    assert [len(b) for b in rank0][:3] == [12, 6, 3]


def test_deterministic_from_seed_and_epoch():
    assert batches(50, 2, epoch=3, seed=1) == batches(50, 2, epoch=3, seed=1)
    assert batches(50, 2, epoch=3, seed=1) != batches(50, 2, epoch=4, seed=1)
    assert batches(50, 2, epoch=3, seed=1) != batches(50, 2, epoch=3, seed=2)


def test_resume_mid_epoch_continues_with_the_same_batches():
    sampler = ShortCycleBatchSampler(100, STEPS, seed=5, rank=1, world_size=2)
    sampler.set_epoch(2)
    full = list(sampler)
    state = sampler.state_dict(consumed=4)
    resumed = ShortCycleBatchSampler(100, STEPS, seed=0, rank=1, world_size=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the training loop calls it again on resume: the position is kept
    assert len(resumed) == len(full) - 4
    assert list(resumed) == full[4:]
    resumed.set_epoch(3)
    assert len(resumed) == len(full)  # the next epoch starts at its first batch


def test_state_of_another_run_is_refused():
    state = ShortCycleBatchSampler(100, STEPS).state_dict()
    with pytest.raises(CheckpointError, match="world_size"):
        ShortCycleBatchSampler(100, STEPS, world_size=2).load_state_dict(state)
    with pytest.raises(CheckpointError, match="global_batches"):
        ShortCycleBatchSampler(100, STEPS[:1]).load_state_dict(state)


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiples"):
        ShortCycleBatchSampler(100, [ShortCycleStep(ClipShape(8, 32), 5)], world_size=2)
    with pytest.raises(ValueError, match="rank"):
        ShortCycleBatchSampler(100, STEPS, rank=2, world_size=2)


class ShapeDataset(Dataset):
    """Stands in for VideoClipDataset: ``(index, shape[, epoch])`` -> a clip of that shape."""

    def __len__(self):
        return 30

    def __getitem__(self, item):
        index, shape, *_ = item
        return torch.zeros(3, shape.frames, shape.crop, shape.crop), index


def test_works_as_a_dataloader_batch_sampler():
    sampler = ShortCycleBatchSampler(30, STEPS, seed=0)
    loader = DataLoader(ShapeDataset(), batch_sampler=sampler)
    shapes = [tuple(clips.shape) for clips, _ in loader]
    assert len(loader) == len(shapes) == 2
    assert shapes == [(24, 3, 8, 32, 32), (6, 3, 8, 45, 45)]
