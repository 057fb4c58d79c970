"""Several datasets as one: merged annotations and a training set that mixes their clips in every batch
(MultiTrain supplement §2.1: one backbone trained on Kinetics, MiT, SSv2 and ActivityNet at once).

**Merged annotations** (:func:`merge_annotations`): the datasets' class lists concatenated, each name
prefixed with its dataset (``kinetics/abseiling``), every label shifted by the classes of the
datasets before it; ``meta["datasets"]`` keeps each dataset's name, class count, video count and
whether it is multi-label, so :func:`split_annotations` gives the parts back.

**Training clips** (:class:`MultiClipDataset`): one :class:`~vidgrid.data.dataset.VideoClipDataset` per
dataset, each with its own clip sampling (flip, stride or segment), indexed by one range of
*slots*: dataset d owns ``round(n_d · sampling_weight_d)`` of them (at least 1). Slot ``j`` of d
serves video ``order_d[j mod n_d]`` of an epoch's permutation of d, so a weight above 1 shows each
video that many times an epoch on average, a weight below 1 a different random share of it each
epoch. The permutation comes from (seed, epoch, dataset): any worker, any resume draws the same.
The batch sampler shuffles and shards the slots, so batches mix the datasets and every step's
clips share the multigrid shape. A broken video is replaced from its own dataset (its own label space).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
import torch
from torch.utils.data import Dataset

from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.dataset import VideoClipDataset
from vidgrid.types import ClipShape

DATASETS_META = "datasets"
"""``Annotations.meta`` key of a merged list: ``[{"name", "classes", "videos", "multi_label"}, ...]``."""


def merge_annotations(parts: Sequence[tuple[str, Annotations]]) -> Annotations:
    """One list of the named datasets' samples, classes ``<name>/<class>`` and labels shifted to match."""
    samples: list[Sample] = []
    classes: list[str] = []
    info = []
    for name, ann in parts:
        offset = len(classes)
        classes += [f"{name}/{c}" for c in ann.classes]
        samples += [dataclasses.replace(s, label=s.label + offset if s.label >= 0 else -1,
                                        labels=tuple(k + offset for k in s.labels)) for s in ann.samples]
        info.append({"name": name, "classes": len(ann.classes), "videos": len(ann.samples), "multi_label": ann.multi_label,
                     "meta": ann.meta})
    return Annotations(samples, classes, multi_label=any(p[1].multi_label for p in parts), meta={DATASETS_META: info})


def split_annotations(annotations: Annotations) -> dict[str, Annotations]:
    """A merged list's parts by dataset name, with the merged (prefixed, shifted) classes and labels."""
    out, start = {}, 0
    for part in annotations.meta[DATASETS_META]:
        stop = start + part["videos"]
        out[part["name"]] = Annotations(annotations.samples[start:stop], annotations.classes,
                                        multi_label=part["multi_label"], meta=part["meta"])
        start = stop
    return out


def slot_counts(sizes: Sequence[int], weights: Sequence[float]) -> list[int]:
    """Slots per dataset in an epoch: ``round(n_d · w_d)``, at least 1."""
    return [max(1, round(n * w)) for n, w in zip(sizes, weights)]


class MultiClipDataset(Dataset):
    """``dataset[(slot, shape, epoch)] -> (uint8 (3, t, s, s), target, index)``, ``index`` into the merged
    list (the video actually served); parts in the order of the merged annotations."""

    def __init__(self, annotations: Annotations, parts: Sequence[VideoClipDataset], *, sampling_weights: Sequence[float],
                 seed: int = 0) -> None:
        self.annotations = annotations
        self.parts = list(parts)
        self.seed = seed
        self.sizes = [len(p) for p in self.parts]
        self.counts = slot_counts(self.sizes, sampling_weights)
        self.slot_starts = [sum(self.counts[:d]) for d in range(len(self.parts) + 1)]
        self.video_starts = [sum(self.sizes[:d]) for d in range(len(self.parts) + 1)]
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._orders: dict[tuple[int, int], list[int]] = {}

    def __len__(self) -> int:
        return self.slot_starts[-1]

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch
        for part in self.parts:
            part.set_epoch(epoch)

    def locate(self, slot: int, epoch: int) -> tuple[int, int]:
        """``(dataset, video within it)`` of a slot at ``epoch``."""
        d = next(k for k in range(len(self.parts)) if slot < self.slot_starts[k + 1])
        key = (d, epoch)
        if key not in self._orders:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 101 + d)
            self._orders = {key: torch.randperm(self.sizes[d], generator=generator).tolist(),
                            **{k: v for k, v in self._orders.items() if k[1] == epoch}}
        return d, self._orders[key][(slot - self.slot_starts[d]) % self.sizes[d]]

    def __getitem__(self, item: tuple[int, ClipShape] | tuple[int, ClipShape, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        slot, shape, *named = item
        epoch = named[0] if named else int(self._epoch[0])
        d, video = self.locate(slot, epoch)
        clip, target, served = self.parts[d][(video, shape, epoch)]
        return clip, target, self.video_starts[d] + served

    def skipped(self) -> list[tuple[str, str]]:
        return [s for part in self.parts for s in part.skipped()]

    def mark_skipped(self, skipped: Sequence[Sequence[str]]) -> None:
        for part in self.parts:
            part.mark_skipped(skipped)
