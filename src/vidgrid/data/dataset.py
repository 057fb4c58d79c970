"""Training and test datasets: one video -> a uint8 clip on the sampling grid the batch sampler asks for.

Training (:class:`VideoClipDataset`) is indexed by ``(index, ClipShape)``: the multigrid batch sampler
chooses the shape t × s² of each mini-batch and the dataset resamples the video on a grid that
yields it (multigrid paper §3.1, §4 "Multigrid Training Details"):

- time: stride uniform in [τ, τ·T/t] with a random start (``stride``), or one random frame per equal
  segment (``segment``, SSv2: any video of one frame or more, frames repeated when it has fewer than
  t, as the SlowFast and MViT SSv2 pipelines do); a span longer than the video repeats the last frame;
- space: short-side jitter in [min_short, max_short]·s/S (the base crop's spans) then a random s×s crop
  (``rescale_crop``), or RandomResizedCrop to s×s (``resized_crop``); optional horizontal flip and
  RandAugment (one op sequence per clip).

Output: uint8 (C, T, H, W); normalisation to float happens on the device, not in the workers.

**Randomness.** Every draw of an item comes from ``random.Random`` seeded with (seed, epoch, index,
shape, attempt), so a run is reproducible whatever the number of workers, and augmentations change
with the epoch: call :meth:`VideoClipDataset.set_epoch` before iterating each epoch (the epoch lives
in shared memory, so persistent DataLoader workers see it too), or name the epoch in the item,
``(index, shape, epoch)``, when one loader runs across epoch boundaries (the trainer's: its workers
decode the next epoch's first batches while the current epoch ends).

**Broken videos never stop a run.** A video that is missing, cannot be decoded, or (with ``stride``
sampling) has fewer frames than the base clip length T is replaced by another random sample of the
same shape, at most
``max_retries`` times (then :class:`~vidgrid.errors.DataError`). Failures go into a shared-memory
table of codes per sample (created before the DataLoader forks its workers), so each is logged once
with path and reason and :meth:`VideoClipDataset.skipped` lists them in the main process even when
the workers did the decoding. A video once found bad is not decoded again. The trainer puts the
:meth:`~VideoClipDataset.skipped` list into its checkpoints and hands it back with
:meth:`~VideoClipDataset.mark_skipped`, so a resumed run still reports the videos skipped before.

**A wrong data root or list stops the run early.** Once 8 videos have failed and fewer than one in
ten of those tried decoded, the dataset raises one :class:`~vidgrid.errors.DataError` naming the
first failed paths, instead of logging a warning per file: failures are logged only once a video
has decoded (those before it in one line).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch.utils.data import Dataset

from vidgrid.data import sampling, transforms
from vidgrid.data.boxes import ClipView, crop_view
from vidgrid.data.decode import DecodeError, decode_frames, probe_video
from vidgrid.data.frame_cache import DecodedVideoCache
from vidgrid.data.randaugment import rand_augment as apply_rand_augment
from vidgrid.errors import DataError
from vidgrid.types import ClipShape

if TYPE_CHECKING:
    from pathlib import Path

    from vidgrid.data.annotations import Annotations, Sample

log = logging.getLogger(__name__)

FAILURE_REASONS = ("", "missing file", "zero-length file", "cannot decode", "fewer frames than the base clip",
                   "keyframe outside the video")
"""Failure code -> reason; 0 = not tried yet, -1 = decoded. Codes live in an int8 shared-memory tensor."""
_TOO_SHORT = 4
_OUTSIDE = 5
_DECODED = -1
GIVE_UP_AFTER = 8
"""Failed videos after which a dataset where fewer than 1 in 10 tried videos decoded stops the run."""


def _failure_code(error: DecodeError) -> int:
    """Code of a decode failure in :data:`FAILURE_REASONS` (anything unnamed is 'cannot decode')."""
    return FAILURE_REASONS.index(error.reason) if error.reason in FAILURE_REASONS[1:3] else 3


def sample_name(sample: Sample) -> str:
    """How a failed sample is reported: its video, and for a keyframe sample also the keyframe
    (``path@12s``: one video holds many keyframes, and a keyframe past its end fails alone)."""
    return f"{sample.path}@{sample.keyframe.time_s:g}s" if sample.keyframe is not None else str(sample.path)


class _FailureTable:
    """Per-sample failure codes and frame counts in shared memory, plus log-once bookkeeping."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = samples
        self.codes = torch.zeros(len(samples), dtype=torch.int8).share_memory_()
        self.num_frames = torch.zeros(len(samples), dtype=torch.int32).share_memory_()  # 0 = not probed
        self.fps = torch.zeros(len(samples), dtype=torch.float64).share_memory_()
        self.frame_bytes = torch.zeros(len(samples), dtype=torch.int64).share_memory_()  # H·W·3 of a decoded frame
        self.seen = torch.zeros(2, dtype=torch.int64).share_memory_()  # videos found bad, decoded by this run

    def is_bad(self, index: int) -> bool:
        return bool(self.codes[index] > 0)

    def record_decoded(self, index: int) -> None:
        """Mark sample ``index`` decoded; the first one logs the failures seen before it in one line."""
        if self.codes[index] != 0:
            return
        self.codes[index] = _DECODED
        self.seen[1] += 1
        if int(self.seen[1]) == 1 and int(self.seen[0]) > 0:
            log.warning("skipping videos: %s", "; ".join(f"{path} ({reason})" for path, reason in self.skipped()))

    def record(self, index: int, code: int, detail: str) -> None:
        """Mark sample ``index`` bad; the first process to see it logs path and reason (once a video
        has decoded). Raises a :class:`DataError` when nearly every video tried failed."""
        if self.codes[index] > 0:
            return
        self.codes[index] = code
        self.seen[0] += 1
        bad, decoded = int(self.seen[0]), int(self.seen[1])
        if decoded:
            log.warning("skipping video %s: %s", sample_name(self.samples[index]), detail)
        if bad >= GIVE_UP_AFTER and decoded * 10 < bad:
            first = ", ".join(path for path, _ in self.skipped()[:3])
            raise DataError(
                f"{bad} of {bad + decoded} videos tried failed ({FAILURE_REASONS[code]}: {first}, ...): the data root "
                f"('data.root') or the annotation list is probably wrong"
            )

    def frame_count(self, index: int) -> int:
        """The video's frame count, probed once (with its rate and frame size) and cached for every
        worker (raises DecodeError)."""
        count = int(self.num_frames[index])
        if count == 0:
            info = probe_video(self.samples[index].path)
            count = info.num_frames
            self.fps[index] = info.fps
            self.frame_bytes[index] = info.height * info.width * 3
            self.num_frames[index] = count
        return count

    def keyframe_index(self, index: int) -> int | None:
        """The frame index of sample ``index``'s keyframe (None: not a keyframe sample); raises
        :class:`_Outside` for a keyframe past the video's end."""
        keyframe = self.samples[index].keyframe
        if keyframe is None:
            return None
        num_frames = self.frame_count(index)
        centre = round(keyframe.time_s * float(self.fps[index]))
        if centre >= num_frames:
            raise _Outside(f"keyframe at {keyframe.time_s:g}s is past the video's {num_frames} frames")
        return centre

    def skipped(self) -> list[tuple[str, str]]:
        bad = torch.nonzero(self.codes > 0).flatten().tolist()
        return [(sample_name(self.samples[i]), FAILURE_REASONS[int(self.codes[i])]) for i in bad]

    def mark_skipped(self, skipped: Sequence[Sequence[str]]) -> None:
        """Mark the ``(path, reason)`` pairs of :meth:`skipped` (of any run on these samples) as bad."""
        where = {sample_name(sample): i for i, sample in enumerate(self.samples)}
        for path, reason in skipped:
            if path in where and self.codes[where[path]] <= 0:
                self.codes[where[path]] = FAILURE_REASONS.index(reason if reason in FAILURE_REASONS[1:] else "cannot decode")


class _TooShort(Exception):
    pass


class _Outside(Exception):
    pass


class VideoClipDataset(Dataset):
    """Training clips: ``dataset[(index, ClipShape(t, s))] -> (uint8 (3, t, s, s), target, index)``,
    at the epoch of :meth:`set_epoch`; ``dataset[(index, shape, epoch)]`` names the epoch instead.

    ``index`` in the result is the sample actually served (a replacement if the asked one was bad),
    so that it matches the target.
    """

    def __init__(
        self,
        annotations: Annotations,
        *,
        target: Callable[[Sample, Sequence[ClipView]], torch.Tensor],
        base_frames: int,
        sampling_rate: int,
        base_crop: int,
        temporal_sampling: Literal["stride", "segment"] = "stride",
        spatial_sampling: Literal["rescale_crop", "resized_crop"] = "rescale_crop",
        min_short: int = 256,
        max_short: int = 320,
        flip: bool = True,
        rand_augment: tuple[int, int] | None = None,
        max_retries: int = 10,
        seed: int = 0,
        cache_bytes: int = 0,
    ) -> None:
        """``target``: a sample's target tensor given where its clip was cut (the task's
        :meth:`vidgrid.tasks.Task.clip_target`).
        ``rand_augment``: (ops n, magnitude m) or None = off. ``base_frames`` T, ``sampling_rate`` τ
        and ``base_crop`` S are the base grid the multigrid shapes are relative to. ``cache_bytes``:
        decoded videos kept per process (:mod:`~vidgrid.data.frame_cache`; 0 = decode every clip)."""
        if not annotations.samples:
            raise DataError("training annotations contain no videos")
        self.annotations = annotations
        self.target = target
        self.base_frames = base_frames
        self.sampling_rate = sampling_rate
        self.base_crop = base_crop
        self.temporal_sampling = temporal_sampling
        self.spatial_sampling = spatial_sampling
        self.min_short = min_short
        self.max_short = max_short
        self.flip = flip
        self.rand_augment = rand_augment
        self.max_retries = max_retries
        self.seed = seed
        self._cache = DecodedVideoCache(cache_bytes)
        self._failures = _FailureTable(annotations.samples)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.annotations.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's augmentation draws (call in the main process before iterating)."""
        self._epoch[0] = epoch

    def skipped(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every video found bad so far, by this process or its workers."""
        return self._failures.skipped()

    def mark_skipped(self, skipped: Sequence[Sequence[str]]) -> None:
        """Take over the ``(path, reason)`` list of :meth:`skipped` of an earlier run (a resume)."""
        self._failures.mark_skipped(skipped)

    def __getitem__(self, item: tuple[int, ClipShape] | tuple[int, ClipShape, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        index, shape, *named = item
        epoch = named[0] if named else int(self._epoch[0])
        candidate = index
        for attempt in range(self.max_retries + 1):
            rng = random.Random(f"{self.seed}/{epoch}/{index}/{shape.frames}x{shape.crop}/{attempt}")
            if attempt > 0:
                candidate = rng.randrange(len(self))
            if self._failures.is_bad(candidate):
                continue
            try:
                clip, view = self._clip(candidate, shape, rng)
            except DecodeError as e:
                self._failures.record(candidate, _failure_code(e), e.reason)
                continue
            except _TooShort as e:
                self._failures.record(candidate, _TOO_SHORT, str(e))
                continue
            except _Outside as e:
                self._failures.record(candidate, _OUTSIDE, str(e))
                continue
            self._failures.record_decoded(candidate)
            return clip, self.target(self.annotations.samples[candidate], [view]), candidate
        raise DataError(
            f"{self.annotations.samples[index].path}: no decodable replacement found in {self.max_retries} retries "
            f"({len(self.skipped())} of {len(self)} videos bad so far); run 'vidgrid data check' on the list"
        )

    def _clip(self, index: int, shape: ClipShape, rng: random.Random) -> tuple[torch.Tensor, ClipView]:
        """Decode and augment one clip of sample ``index``: uint8 (C, t, s, s) and where it was cut."""
        num_frames = self._failures.frame_count(index)
        if self.temporal_sampling == "stride" and num_frames < self.base_frames:
            raise _TooShort(f"{num_frames} frames, fewer than the base clip's {self.base_frames}")
        keyframe = self._failures.keyframe_index(index)
        if keyframe is not None:  # a keyframe's clip is centred on it, at a stride of the stride range
            stride = rng.randint(*sampling.stride_range(shape.frames, self.base_frames, self.sampling_rate))
            indices = sampling.centred_indices(num_frames, keyframe, shape.frames, stride)
        elif self.temporal_sampling == "segment":
            indices = sampling.random_segment_indices(num_frames, shape.frames, rng)
        else:
            indices = sampling.random_stride_indices(num_frames, shape.frames, self.base_frames, self.sampling_rate, rng)
        path, frame_bytes = self.annotations.samples[index].path, int(self._failures.frame_bytes[index])
        frames = self._cache.frames(path, num_frames, indices, frame_bytes)  # (t, H, W, 3)
        frame_size = (frames.shape[1], frames.shape[2])
        if self.spatial_sampling == "resized_crop":
            frames, box = transforms.random_resized_crop(frames, shape.crop, rng)
        else:
            short_range = transforms.jitter_range(shape.crop, self.base_crop, self.min_short, self.max_short)
            frames, box = transforms.random_rescale_crop(frames, shape.crop, short_range, rng)
        flip = False
        if self.flip:
            frames, flip = transforms.random_hflip(frames, rng)
        if self.rand_augment is not None:
            frames = apply_rand_augment(frames, *self.rand_augment, rng)
        view = crop_view((indices[0] + indices[-1]) / 2, box, (shape.crop, shape.crop), flip, frame_size=frame_size)
        return transforms.to_model_layout(frames), view  # (t, s, s, C) -> (C, t, s, s)


class VideoTestDataset(Dataset):
    """Multi-view test clips: ``dataset[index] -> (uint8 (V, 3, T, s, s), target, index)``, V = clips × crops.

    Each video is decoded once (the union of all views' frames), its short side resized to
    ``short_side``, and every view cut from those frames; ``crops`` 0 takes the whole resized frame
    (V = clips, not square). A keyframe sample's clips are all the one centred on its keyframe. A broken video, or one with fewer frames
    than a clip's ``frames`` (as in training), gives all-zero views and index -1 (the evaluator
    leaves it out); it is logged once and listed by :meth:`skipped`.
    """

    def __init__(
        self,
        annotations: Annotations,
        *,
        target: Callable[[Sample, Sequence[ClipView]], torch.Tensor],
        frames: int,
        sampling_rate: int,
        clips: int,
        crops: Literal[0, 1, 3],
        short_side: int,
        crop: int,
        temporal_sampling: Literal["stride", "segment"] = "stride",
    ) -> None:
        if crops and crop > short_side:
            raise DataError(f"test crop {crop} is larger than the test short side {short_side}")
        self.annotations = annotations
        self.target = target
        self.frames = frames
        self.sampling_rate = sampling_rate
        self.clips = clips
        self.crops = crops
        self.short_side = short_side
        self.crop = crop
        self.temporal_sampling = temporal_sampling
        self._failures = _FailureTable(annotations.samples)

    def __len__(self) -> int:
        return len(self.annotations.samples)

    @property
    def num_views(self) -> int:
        return self.clips * max(self.crops, 1)

    def skipped(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every video that could not be decoded, by this process or its workers."""
        return self._failures.skipped()

    def mark_skipped(self, skipped: Sequence[Sequence[str]]) -> None:
        """Take over the ``(path, reason)`` list of :meth:`skipped` of an earlier run (a resume)."""
        self._failures.mark_skipped(skipped)

    def view_indices(self, num_frames: int) -> list[list[int]]:
        """Frame indices of the K temporal clips of a ``num_frames`` video."""
        if self.temporal_sampling == "segment":
            return sampling.eval_segment_indices(num_frames, self.frames, self.clips)
        return sampling.eval_stride_indices(num_frames, self.frames, self.sampling_rate, self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        sample = self.annotations.samples[index]
        # an undecodable video's target sees nominal views (its row is left out of every metric)
        nominal = [ClipView(0.0, (0.0, 0.0, float(self.crop), float(self.crop)), (self.crop, self.crop))] * self.num_views
        empty = torch.zeros(self.num_views, 3, self.frames, self.crop, self.crop, dtype=torch.uint8)
        if self._failures.is_bad(index):
            return empty, self.target(sample, nominal), -1
        try:
            num_frames = self._failures.frame_count(index)
            if num_frames < self.frames:
                self._failures.record(index, _TOO_SHORT, f"{num_frames} frames, fewer than the clip's {self.frames}")
                return empty, self.target(sample, nominal), -1
            keyframe = self._failures.keyframe_index(index)
            clips = None if keyframe is None else [sampling.centred_indices(num_frames, keyframe, self.frames, self.sampling_rate)] * self.clips
            views, where = self._views(sample.path, num_frames, clips=clips)
        except DecodeError as e:
            self._failures.record(index, _failure_code(e), e.reason)
            return empty, self.target(sample, nominal), -1
        except _Outside as e:
            self._failures.record(index, _OUTSIDE, str(e))
            return empty, self.target(sample, nominal), -1
        self._failures.record_decoded(index)
        return views, self.target(sample, where), index

    def window_views(self, path: str | Path, start: int, stop: int) -> torch.Tensor:
        """All views of the frames ``[start, stop)`` of a video, as if they were a whole video (one
        window of a long video): uint8 (V, C, T, s, s); a :class:`DecodeError` for a broken file."""
        return self._views(path, stop - start, offset=start)[0]

    def _views(self, path, num_frames: int, *, offset: int = 0, clips: list[list[int]] | None = None) -> tuple[torch.Tensor, list[ClipView]]:
        """All views of one video (or of the ``num_frames`` from frame ``offset``; or of the given
        ``clips``' frame indices) from a single decode: uint8 (V, C, T, s, s), and where each was cut."""
        clips = clips or [[offset + i for i in clip] for clip in self.view_indices(num_frames)]
        union = sorted({i for clip in clips for i in clip})
        source = decode_frames(path, union, threads=1)  # (U, H, W, 3)
        frames = transforms.resize_short_side(source, self.short_side)  # (U, h, w, 3)
        scale = (frames.shape[1] / source.shape[1], frames.shape[2] / source.shape[2])
        position = {frame: k for k, frame in enumerate(union)}
        boxes = transforms.eval_crop_boxes(frames.shape[1], frames.shape[2], self.crop, self.crops)
        views, where = [], []
        for clip in clips:
            clip_frames = frames[torch.tensor([position[i] for i in clip])]  # (T, h, w, 3)
            views.extend(transforms.to_model_layout(transforms.crop(clip_frames, box)) for box in boxes)
            where.extend(crop_view((clip[0] + clip[-1]) / 2, box, (box[2], box[3]), scale=scale,
                                   frame_size=(source.shape[1], source.shape[2])) for box in boxes)
        return torch.stack(views), where  # (V, C, T, s, s)
