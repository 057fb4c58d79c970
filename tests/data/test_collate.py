"""Whole-frame test views of videos of different sizes batch together, padded at the bottom and right."""

from __future__ import annotations

import torch

from vidgrid.data.collate import pad_collate
from vidgrid.data.transforms import eval_crop_boxes


def test_clips_of_different_sizes_are_zero_padded_bottom_right():
    a = torch.ones(1, 3, 2, 4, 6, dtype=torch.uint8)
    b = torch.full((1, 3, 2, 5, 3), 2, dtype=torch.uint8)
    clips, targets, index = pad_collate([(a, torch.tensor([1.0]), 0), (b, torch.tensor([2.0]), 1)])
    assert clips.shape == (2, 1, 3, 2, 5, 6)
    assert (clips[0, ..., :4, :6] == 1).all() and (clips[0, ..., 4:, :] == 0).all()
    assert (clips[1, ..., :5, :3] == 2).all() and (clips[1, ..., 3:] == 0).all()
    assert targets.tolist() == [[1.0], [2.0]] and index.tolist() == [0, 1]


def test_equal_sizes_batch_unchanged():
    a = torch.ones(3, 2, 4, 4)
    clips, _ = pad_collate([(a, 0), (a * 2, 1)])
    assert torch.equal(clips, torch.stack([a, a * 2]))


def test_whole_frame_box():
    assert eval_crop_boxes(72, 96, 64, 0) == [(0, 0, 72, 96)]
