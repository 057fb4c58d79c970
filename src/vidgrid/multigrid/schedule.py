"""The multigrid schedule (Wu et al., "A Multigrid Method for Efficiently Training Video Models",
CVPR 2020, §3.2 and Appendix A.1) as plain arithmetic, without torch.

A schedule is a list of :class:`Segment` s, each a whole number of epochs at one long-cycle shape with
its short cycle. A baseline is the same object with one segment at the base shape and no short cycle,
and the schedule carries the run's BatchNorm rules, so the trainer runs both through one code path.

Rules (§3.2 unless marked):

* **Eq. 1** — shape t×s² gets the batch b = B·(T/t)·(S/s)² from the nominal factors (footnote 2
  ignores that s = S/√2 is rounded to whole pixels), rounded to whole clips and to a multiple of the
  process count.
* **Long cycle** — one cycle over the shapes per LR stage but the last, each shape for the same number
  of iterations (its epochs ∝ its mean short-cycle batch).
* **Short cycle** — iteration i of an epoch uses position i mod len(steps): crops S·f for each
  ``short_cycle_factors`` f (at the long-cycle shape's frames), then the long-cycle shape itself.
* **Fine-tuning** — the last LR stage trains the base shape with the short cycle only, shortened by the
  long cycles' iteration saving (as PySlowFast does); under the step policy its first half keeps the
  previous stage's LR.
* **Epochs** — all lengths scaled so the total is ``epoch_factor`` × the baseline's, boundaries rounded
  to whole epochs (the total rounded down).
* **LR** — × the long-cycle batch factor (linear scaling rule), never the short cycle's. The cosine and
  the warm-up follow the share of *iterations* done (:meth:`MultigridSchedule.progress`), as every
  iteration costs about the same (Eq. 1); in epochs, the base shape's iterations would all run near the
  cosine's end (Appendix A.1: "relatively smaller LRs used in larger (later) shapes"). Step stages stay
  in epochs: they define the long cycles.
* **Frame floor** (vidgrid) — a long-cycle shape keeps at least ``min_frames`` frames (3, the temporal
  kernel: fewer leave every temporal filter reading zero padding). Below it the frames double and the
  crops shrink by √2 (2×45² → 4×32²): the volume t·s², hence batch, cost and iterations, stay the paper's.
* **Batch cap** (vidgrid) — with ``max_batch_factor`` k, no step takes more than k·B clips: each
  long-cycle shape keeps the paper's epochs, cut into more, smaller steps. Eq. 1 trades iterations
  for batch, which the linear scaling rule makes free only while there are iterations to spare; a run
  of a few hundred videos and a few thousand steps has none (see ``configs/demo.yaml``). The LR
  follows the capped long-cycle batch (linear scaling rule). The cap evens out the short cycle's
  batches, so an epoch sends more of its clips through the long-cycle shape than Eq. 1's 4:2:1 does:
  compute rises a little (the demo: 0.33 of the baseline's uncapped, 0.35 at k = 4, 0.39 at k = 2).
* **Short recipes** (vidgrid) — every LR stage, long-cycle shape and fine-tuning LR keeps at least one
  epoch; if the recipe is too short, long-cycle shapes are dropped coarsest first (``dropped_shapes``),
  never an LR stage or the base shape.

Variants (Appendix A.1): long cycle only; short cycle only (each stage stretched by ``epoch_factor``);
with several ``schedule.steps`` stages one long cycle per stage ("multi-cycle"), with the single stage
``[0]`` one long cycle over the whole run and no fine-tuning ("single-cycle").
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vidgrid.errors import ConfigError, VidgridError
from vidgrid.types import ClipShape

if TYPE_CHECKING:
    from vidgrid.config import Config

Policy = Literal["step", "cosine"]


@dataclass(frozen=True)
class ShortCycleStep:
    """One short-cycle position: the clip shape and the global batch (all processes) it uses."""

    shape: ClipShape
    global_batch: int


@dataclass(frozen=True)
class Segment:
    """Epochs ``[start_epoch, end_epoch)`` trained on one long-cycle shape, the last of ``steps``."""

    start_epoch: int
    end_epoch: int
    lr_stage: int
    """Index of the LR stage the segment starts in (a segment without long cycle spans all stages)."""
    lr_multiplier: float
    """Long-cycle batch factor ``base_batch / B`` (linear scaling rule; 8, 4, 2, 1 by default)."""
    steps: tuple[ShortCycleStep, ...]
    """Short-cycle positions; a single step (the long-cycle shape) when there is no short cycle."""

    @property
    def epochs(self) -> int:
        return self.end_epoch - self.start_epoch

    @property
    def shape(self) -> ClipShape:
        """The long-cycle shape."""
        return self.steps[-1].shape

    @property
    def base_batch(self) -> int:
        """Global batch of the long-cycle shape (Eq. 1)."""
        return self.steps[-1].global_batch

    @property
    def global_batches(self) -> tuple[int, ...]:
        return tuple(step.global_batch for step in self.steps)

    @property
    def shapes(self) -> tuple[ClipShape, ...]:
        return tuple(step.shape for step in self.steps)


@dataclass(frozen=True)
class MultigridSchedule:
    """Segments, the LR policy and the BatchNorm rules: what the trainer asks at each epoch and iteration."""

    segments: tuple[Segment, ...]
    base_batch: int
    """The baseline global batch B."""
    processes: int
    """Training processes; every global batch is a multiple of it."""
    policy: Policy
    stage_starts: tuple[int, ...]
    """Start epoch of each LR stage (step policy; also labels the stages of the cosine policy)."""
    stage_lrs: tuple[float, ...]
    """Relative LR of each stage (step policy)."""
    cosine_end: float
    """Final LR of the cosine as a fraction of the base LR (cosine policy)."""
    dropped_shapes: tuple[ClipShape, ...] = ()
    """Long-cycle shapes left out because the recipe has too few epochs for all of them."""
    multigrid: bool = False
    """A multigrid run (False: the baseline)."""
    bn_base_size: int = 8
    """Clips per BatchNorm group at the long-cycle batch (§3.2; the baseline too, X3D supplement §A.3)."""
    precise_bn_batches: int = 0
    """Training batches at the base shape whose BN statistics replace the running ones before a
    validation (0 = none): a multigrid run's running statistics mix all the shapes of its last epochs."""

    @property
    def total_epochs(self) -> int:
        return self.segments[-1].end_epoch

    @property
    def shapes(self) -> set[ClipShape]:
        """Every clip shape the run trains on (for checking them against the model up front)."""
        return {shape for seg in self.segments for shape in seg.shapes}

    @property
    def note(self) -> str:
        """One line saying which long-cycle shapes a too-short recipe left out ('' when none)."""
        if not self.dropped_shapes:
            return ""
        shapes = ", ".join(str(shape) for shape in self.dropped_shapes)
        return f"{self.total_epochs} epochs are too few for the whole long cycle: left out {shapes} (coarsest first)"

    def segment_at(self, epoch: float) -> Segment:
        """The segment that trains ``epoch`` (epochs past the end belong to the last segment)."""
        if epoch < 0:
            raise ValueError(f"epoch {epoch} < 0")
        ends = [seg.end_epoch for seg in self.segments]
        return self.segments[min(bisect.bisect_right(ends, epoch), len(ends) - 1)]

    def progress(self, epoch: float) -> float:
        """Share of the run's iterations done at fractional ``epoch``, in [0, 1] (epochs / total for a
        baseline). An epoch of a segment holds ``len(steps) / sum(global_batches)`` iterations per clip
        (:func:`epoch_plan` up to its last batch), so no dataset size is needed."""
        rates, total = self._iteration_rates
        done = sum(r * min(max(epoch - seg.start_epoch, 0.0), seg.epochs) for r, seg in zip(rates, self.segments))
        return min(done / total, 1.0)

    @functools.cached_property
    def _iteration_rates(self) -> tuple[tuple[float, ...], float]:
        """Iterations per clip of an epoch of each segment, and the run's total in the same unit."""
        rates = tuple(len(seg.steps) / sum(seg.global_batches) for seg in self.segments)
        return rates, sum(r * seg.epochs for r, seg in zip(rates, self.segments))

    def lr_factor(self, epoch: float) -> float:
        """LR at fractional ``epoch`` relative to the (linearly scaled) base LR: the step policy (by
        epoch) or the cosine (by :meth:`progress`) × the segment's long-cycle multiplier. Warm-up is
        the engine's (also by :meth:`progress`)."""
        if self.policy == "step":
            stage = bisect.bisect_right(self.stage_starts, epoch) - 1
            policy = self.stage_lrs[max(stage, 0)]
        else:
            policy = self.cosine_end + (1 - self.cosine_end) * 0.5 * (1 + math.cos(math.pi * self.progress(epoch)))
        return policy * self.segment_at(epoch).lr_multiplier

    def iterations_per_epoch(self, segment: Segment, dataset_size: int) -> int:
        """Iterations of one epoch of ``segment`` over ``dataset_size`` clips (see :func:`epoch_plan`)."""
        return len(epoch_plan(dataset_size, segment.global_batches, self.processes))

    def iterations(self, segment: Segment, dataset_size: int) -> int:
        """Iterations of the whole ``segment``."""
        return segment.epochs * self.iterations_per_epoch(segment, dataset_size)

    def total_iterations(self, dataset_size: int) -> int:
        return sum(self.iterations(seg, dataset_size) for seg in self.segments)


def scaled_batch(base_batch: int, time_factor: float, space_factor: float, processes: int) -> int:
    """Eq. 1: b = B·(T/t)·(S/s)² for nominal factors t/T, s/S, rounded to whole clips and to a
    multiple of ``processes`` (at least one clip per process)."""
    clips = round(base_batch / (time_factor * space_factor**2))
    return max(processes, processes * round(clips / processes))


def epoch_plan(dataset_size: int, global_batches: Sequence[int], processes: int) -> list[int]:
    """Global batch sizes of the iterations of one epoch that uses every clip exactly once.

    Iteration i takes ``global_batches[i % len(global_batches)]`` clips; the last batch holds what is
    left (possibly fewer). If fewer clips than ``processes`` would be left, they join the previous
    batch instead, so no process ever gets an empty batch.
    """
    if dataset_size < processes:
        raise VidgridError(f"dataset of {dataset_size} clips is smaller than the {processes} training processes")
    full_cycles, left = divmod(dataset_size, sum(global_batches))
    plan = list(global_batches) * full_cycles
    for batch in global_batches:
        if left == 0:
            break
        plan.append(min(batch, left))
        left -= plan[-1]
    if plan[-1] < processes:
        rest = plan.pop()
        plan[-1] += rest
    return plan


def build_schedule(
    *,
    base: ClipShape,
    base_batch: int,
    epochs: int,
    stage_starts: Sequence[int],
    stage_lrs: Sequence[float],
    policy: Policy = "step",
    cosine_end: float = 0.0,
    long_cycle: Sequence[tuple[float, float]] = (),
    short_cycle: Sequence[float] = (),
    epoch_factor: float = 1.0,
    processes: int = 1,
    min_frames: int = 1,
    max_batch_factor: float = 0.0,
) -> MultigridSchedule:
    """The multigrid schedule of a baseline recipe (module docstring has the rules).

    ``long_cycle``: (time, space) factors of the long-cycle shapes, empty = no long cycle;
    ``short_cycle``: space factors of the short-cycle crops, empty = no short cycle;
    ``min_frames``: the fewest frames of a long-cycle shape (:func:`frame_floor`);
    ``max_batch_factor``: the largest batch of a step relative to ``base_batch`` (0 = Eq. 1's, uncapped).
    """
    if base_batch % processes:
        raise ConfigError(f"'train.batch_size' = {base_batch}: expected a multiple of the {processes} processes")
    factors = [*long_cycle, *((f, f) for f in short_cycle)]
    if any(not 0 < f <= 1 for pair in factors for f in pair):
        raise ConfigError(f"multigrid cycle factors {factors}: expected factors in (0, 1]")
    if max_batch_factor and max_batch_factor < 1:
        raise ConfigError(f"'multigrid.max_batch_factor' = {max_batch_factor}: expected 0 (Eq. 1's batches) or a factor >= 1")

    def steps_of(time_factor: float, space_factor: float) -> tuple[ShortCycleStep, ...]:
        """Short-cycle positions of a long-cycle shape: crops S·f at its frames, then the shape itself."""
        frames, crop_scale = frame_floor(base.frames, time_factor, min_frames)
        return tuple(
            ShortCycleStep(ClipShape(frames, round(base.crop * f * crop_scale)), scaled_batch(base_batch, time_factor, f, processes))
            for f in [*short_cycle, space_factor]
        )

    base_steps = steps_of(1.0, 1.0)
    total = max(1, math.floor(epoch_factor * epochs + 1e-9))
    dropped: tuple[ClipShape, ...] = ()
    if not long_cycle:  # baseline or short cycle only: one segment, every stage stretched alike
        segments = [Segment(0, total, 0, 1.0, base_steps)]
        counts = _whole_epochs([b - a for a, b in zip(stage_starts, [*stage_starts[1:], epochs])], [1] * len(stage_starts), total)
        if counts is None:
            raise ConfigError(f"'train.epochs' = {epochs}: too few for the {len(stage_starts)} LR stages of 'schedule.steps'")
        starts = [sum(counts[:k]) for k in range(len(stage_starts))]
    else:
        fine_tuning_halves = len(stage_starts) > 1 and policy == "step"
        cycle = [steps_of(t, s) for t, s in long_cycle]
        for drop in range(len(cycle)):
            built = _long_cycle_segments(base_steps, cycle[drop:], stage_starts, epochs, total, base_batch, fine_tuning_halves)
            if built is not None:
                segments, dropped = built, tuple(steps[-1].shape for steps in cycle[:drop])
                break
        else:
            raise ConfigError(
                f"'train.epochs' = {epochs}: too few for the {len(stage_starts)} LR stages of 'schedule.steps' "
                f"under multigrid ({total} epochs)"
            )
        starts = [next((s.start_epoch for s in segments if s.lr_stage >= k), total) for k in range(len(stage_starts))]
        if fine_tuning_halves:
            segments, starts = _split_fine_tuning(segments, starts)
    if max_batch_factor:
        most = processes * math.floor(max_batch_factor * base_batch / processes)  # >= base_batch, a multiple of processes
        segments = [_cap_batches(seg, most, base_batch) for seg in segments]
    return MultigridSchedule(
        segments=tuple(s for s in segments if s.epochs > 0), base_batch=base_batch, processes=processes, policy=policy,
        stage_starts=tuple(starts), stage_lrs=tuple(stage_lrs), cosine_end=cosine_end, dropped_shapes=dropped,
    )


def frame_floor(base_frames: int, time_factor: float, min_frames: int) -> tuple[int, float]:
    """Frames of a long-cycle shape with time factor ``time_factor`` of ``base_frames``, and the factor
    its crops are scaled by: below ``min_frames`` frames the frames double (up to the base) and the
    crops shrink by √2 per doubling, keeping the clip volume t·s² and so the Eq. 1 batch."""
    factor = time_factor
    while round(base_frames * factor) < min_frames and factor < 1:
        factor = min(1.0, 2 * factor)
    return max(1, round(base_frames * factor)), math.sqrt(time_factor / factor)


def _mean_batch(steps: Sequence[ShortCycleStep]) -> float:
    return sum(step.global_batch for step in steps) / len(steps)


def _whole_epochs(lengths: Sequence[float], minimum: Sequence[int], total: int) -> list[int] | None:
    """Whole epochs for pieces of relative ``lengths`` scaled to ``total``: the boundaries rounded
    from the running sum, each piece held to its ``minimum``; None when ``total < sum(minimum)``."""
    if total < sum(minimum):
        return None
    scale = total / sum(lengths)
    ends: list[int] = []
    done = 0.0
    for i, (length, low) in enumerate(zip(lengths, minimum)):
        done += length * scale
        previous = ends[-1] if ends else 0
        last = i == len(lengths) - 1
        ends.append(total if last else min(max(round(done), previous + low), total - sum(minimum[i + 1 :])))
    return [b - a for a, b in zip([0, *ends[:-1]], ends)]


def _long_cycle_segments(
    base_steps: tuple[ShortCycleStep, ...],
    cycle: list[tuple[ShortCycleStep, ...]],
    stage_starts: Sequence[int],
    epochs: int,
    total: int,
    base_batch: int,
    fine_tuning_halves: bool,
) -> list[Segment] | None:
    """One long cycle per LR stage but the last (equal iterations per shape: epochs ∝ mean batch),
    then the fine-tuning stage shortened by the same iteration saving; all scaled to ``total``
    epochs and rounded to whole epochs, at least one per piece (two for fine-tuning in halves).
    A single stage gets one cycle and no fine-tuning. None when ``total`` is too short for that."""
    lengths = [b - a for a, b in zip(stage_starts, [*stage_starts[1:], epochs])]
    means = [_mean_batch(steps) for steps in cycle]
    pieces: list[tuple[float, tuple[ShortCycleStep, ...], int]] = []  # (epochs, steps, LR stage)
    for stage, length in enumerate(lengths[:-1] or lengths):
        pieces += [(length * m / sum(means), steps, stage) for m, steps in zip(means, cycle)]
    minimum = [1] * len(pieces)
    if len(lengths) > 1:
        saving = sum(means) / len(means)  # iterations fall by the mean batch factor in the cycles
        pieces.append((lengths[-1] * _mean_batch(base_steps) / saving, base_steps, len(lengths) - 1))
        minimum.append(2 if fine_tuning_halves else 1)
    counts = _whole_epochs([p[0] for p in pieces], minimum, total)
    if counts is None:
        return None
    segments: list[Segment] = []
    for count, (_, steps, stage) in zip(counts, pieces):
        start = segments[-1].end_epoch if segments else 0
        segments.append(Segment(start, start + count, stage, steps[-1].global_batch / base_batch, steps))
    return segments


def _cap_batches(segment: Segment, most: int, base_batch: int) -> Segment:
    """``segment`` with every step's batch at most ``most`` clips (same epochs, more iterations) and
    the LR multiplier of its capped long-cycle batch."""
    steps = tuple(ShortCycleStep(step.shape, min(step.global_batch, most)) for step in segment.steps)
    return dataclasses.replace(segment, steps=steps, lr_multiplier=steps[-1].global_batch / base_batch)


def _split_fine_tuning(segments: list[Segment], starts: list[int]) -> tuple[list[Segment], list[int]]:
    """Fine-tuning under the step policy: the first half of the last stage keeps the previous stage's LR."""
    last = segments[-1]
    middle = (last.start_epoch + last.end_epoch + 1) // 2
    first = dataclasses.replace(last, end_epoch=middle, lr_stage=last.lr_stage - 1)
    second = dataclasses.replace(last, start_epoch=middle)
    return [*segments[:-1], first, second], [*starts[:-1], middle]


def schedule_from_config(cfg: Config, *, processes: int = 1) -> MultigridSchedule:
    """The run's schedule: multigrid when ``multigrid.enabled``, else the baseline (one segment); the
    BN groups are of ``multigrid.bn_base_size`` clips either way, precise BN is multigrid's."""
    mg = cfg.multigrid
    enabled = mg.enabled
    schedule = build_schedule(
        base=ClipShape(cfg.data.frames, cfg.data.crop),
        base_batch=cfg.train.batch_size,
        epochs=cfg.train.epochs,
        stage_starts=cfg.schedule.steps,
        stage_lrs=cfg.schedule.lrs,
        policy=cfg.schedule.policy,
        cosine_end=cfg.schedule.cosine_end,
        long_cycle=mg.long_cycle_factors if enabled and mg.long_cycle else (),
        short_cycle=mg.short_cycle_factors if enabled and mg.short_cycle else (),
        epoch_factor=mg.epoch_factor if enabled else 1.0,
        processes=processes,
        min_frames=mg.min_frames,
        max_batch_factor=mg.max_batch_factor,  # a baseline's batch B is never above the cap
    )
    return dataclasses.replace(
        schedule, multigrid=enabled, bn_base_size=mg.bn_base_size, precise_bn_batches=mg.precise_bn_batches if enabled else 0
    )
