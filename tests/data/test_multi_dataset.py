"""Several datasets as one: merged annotations, and slots that mix them by their sampling weights."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.multi_dataset import MultiClipDataset, merge_annotations, slot_counts, split_annotations
from vidgrid.types import ClipShape


def annotations(prefix: str, videos: int, classes: int, *, multi_label: bool = False) -> Annotations:
    samples = [Sample(Path(f"{prefix}{i}.mp4"), -1, labels=(i % classes,)) if multi_label else Sample(Path(f"{prefix}{i}.mp4"), i % classes)
               for i in range(videos)]
    return Annotations(samples, [f"c{k}" for k in range(classes)], multi_label=multi_label)


def test_merge_prefixes_classes_shifts_labels_and_splits_back():
    merged = merge_annotations([("k", annotations("k", 4, 3)), ("c", annotations("c", 3, 2, multi_label=True))])
    assert merged.classes == ["k/c0", "k/c1", "k/c2", "c/c0", "c/c1"]
    assert [s.label for s in merged.samples[:4]] == [0, 1, 2, 0]
    assert [s.labels for s in merged.samples[4:]] == [(3,), (4,), (3,)] and merged.samples[4].label == -1
    parts = split_annotations(merged)
    assert list(parts) == ["k", "c"] and [len(p.samples) for p in parts.values()] == [4, 3]
    assert parts["c"].multi_label and not parts["k"].multi_label
    assert parts["c"].samples[0].path == Path("c0.mp4")


def test_slot_counts_follow_the_sampling_weights():
    assert slot_counts([100, 10, 3], [1.0, 2.5, 0.1]) == [100, 25, 1]


class FakePart:
    """A training set that serves ``(index, shape, epoch)`` with its own index as the target."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, item):
        index, shape, epoch = item
        return torch.zeros(1), torch.tensor(index), index

    def set_epoch(self, epoch: int) -> None:
        pass


def multi(sizes, weights, seed=0) -> MultiClipDataset:
    merged = merge_annotations([(f"d{k}", annotations(f"d{k}-", n, 2)) for k, n in enumerate(sizes)])
    return MultiClipDataset(merged, [FakePart(n) for n in sizes], sampling_weights=weights, seed=seed)


def test_slots_cover_a_replicated_dataset_evenly_and_a_subsampled_one_differently_each_epoch():
    data = multi([4, 10], [2.0, 0.5])
    assert len(data) == 8 + 5
    shape = ClipShape(4, 32)
    served = Counter(data[(slot, shape, 0)][2] for slot in range(8))
    assert served == {i: 2 for i in range(4)}  # weight 2: every video twice an epoch
    first = {data[(slot, shape, 0)][2] for slot in range(8, 13)}
    second = {data[(slot, shape, 1)][2] for slot in range(8, 13)}
    assert len(first) == 5 and all(4 <= i < 14 for i in first)  # merged indices of the second dataset
    assert first != second  # weight 0.5: another half each epoch
    assert first == {multi([4, 10], [2.0, 0.5])[(slot, shape, 0)][2] for slot in range(8, 13)}  # reproducible


def test_a_slot_serves_its_own_datasets_video():
    data = multi([3, 5], [1.0, 1.0], seed=3)
    for slot in range(8):
        dataset, video = data.locate(slot, 2)
        assert dataset == (0 if slot < 3 else 1) and 0 <= video < (3, 5)[dataset]


def test_weights_out_of_range_are_config_errors():
    from vidgrid.config import load_config
    from vidgrid.errors import ConfigError

    base = ["task.name=multitrain"]
    with pytest.raises(ConfigError, match=r"'datasets\[1\].eval_crops' = 2"):
        load_config(None, [*base, "datasets=[{name: a, train_list: t, val_list: v}, {name: b, train_list: t, val_list: v, eval_crops: 2}]"])
    with pytest.raises(ConfigError, match="'data.train_list'"):
        load_config(None, [*base, "data.train_list=x", "datasets=[{name: a, train_list: t, val_list: v}, {name: b, train_list: t, val_list: v}]"])
