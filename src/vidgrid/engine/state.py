"""A run's resumable state as a dict of *stateful* parts (torchtitan's Stateful pattern): each part has
``state_dict()`` and ``load_state_dict()``, and a checkpoint's ``train`` entry is the dict of their
state dicts, saved and restored by one loop each (:func:`save_parts`, :func:`load_parts`).

The parts besides the optimizer and grad scaler: :class:`TrainState` (counters), :class:`SamplerPosition`
(where the epoch's batch sampler is), :class:`ProcessStreams` (every process's RNG streams and
mixer) and :class:`SkippedVideos` (the videos any process found broken). The last two gather from
every process, so every process saves; rank 0 writes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from vidgrid.data.dataset import VideoClipDataset, VideoTestDataset
from vidgrid.engine import distributed as D
from vidgrid.engine.checkpoint import rng_state, set_rng_state
from vidgrid.engine.mixup import Mixer
from vidgrid.multigrid.sampler import ShortCycleBatchSampler


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any] | list[Any]: ...

    def load_state_dict(self, state: Any) -> None: ...


def save_parts(parts: Mapping[str, Stateful]) -> dict[str, Any]:
    """Every part's state dict (a collective for the parts that gather: call it on every process)."""
    return {name: part.state_dict() for name, part in parts.items()}


def load_parts(parts: Mapping[str, Stateful], state: Mapping[str, Any]) -> None:
    """Load each part from ``state``, in the order of ``parts``."""
    for name, part in parts.items():
        part.load_state_dict(state[name])


@dataclass
class TrainState:
    """Where the run is: the counters a checkpoint saves and ``summary.json`` reports."""

    epoch: int = 0
    """Epoch being trained (after an epoch-end checkpoint: the next one; after a stop during its
    validation: that epoch, with ``step`` at its end)."""
    step: int = 0
    """Iterations of ``epoch`` done (a resumed sampler continues here)."""
    iteration: int = 0
    """Optimizer steps since the start of training."""
    clips_seen: int = 0
    """Training clips over all processes."""
    wall_time_s: float = 0.0
    """Training wall time, summed over resumed runs."""
    val: dict[str, float] = field(default_factory=dict)
    """The latest validation metrics."""
    best: dict[str, dict[str, float]] = field(default_factory=dict)
    """The best validation so far of each metric that keeps a best checkpoint: ``{metric: {"value", "epoch"}}``."""
    last_batch: int = 0
    """Global batch of the latest iteration."""

    def advance(self, batch: int) -> None:
        """One optimizer step on ``batch`` clips (over all processes) is done."""
        self.step, self.iteration, self.clips_seen, self.last_batch = self.step + 1, self.iteration + 1, self.clips_seen + batch, batch

    def improves(self, metrics: Mapping[str, float], names: Iterable[str]) -> list[str]:
        """Record a validation; the metrics among ``names`` that are the best so far (ties are not)."""
        better = [m for m in names if m not in self.best or metrics[m] > self.best[m]["value"]]
        for m in better:
            self.best[m] = {"value": metrics[m], "epoch": self.epoch}
        return better

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class SamplerPosition:
    """The position of the epoch being trained: saved from its batch sampler (``sampler``, set by the
    loop), restored as ``pending`` until the loop has built that epoch's sampler (a mid-epoch resume)."""

    def __init__(self, state: TrainState) -> None:
        self.train_state = state
        self.sampler: ShortCycleBatchSampler | None = None
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict(consumed=self.train_state.step)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending = state if self.train_state.step else None

    def restore_into(self, sampler: ShortCycleBatchSampler) -> None:
        """Give a resumed epoch's sampler its position (once)."""
        if self.pending is not None:
            sampler.load_state_dict(self.pending)
            self.pending = None


class ProcessStreams:
    """Every process's RNG streams (python, numpy, torch, CUDA) and mixer, one entry per rank. A run
    resumed on another number of processes restarts the streams (entry ``rank mod n``) and the epoch
    it was in, whose shards differ."""

    def __init__(self, env: D.DistEnv, mixer: Mixer, state: TrainState) -> None:
        self.env, self.mixer, self.train_state = env, mixer, state

    def state_dict(self) -> list[dict[str, Any]]:
        return D.gather_objects({"rng": rng_state(), "mixer": self.mixer.state_dict()})

    def load_state_dict(self, processes: list[dict[str, Any]]) -> None:
        if len(processes) != self.env.world_size:
            if self.env.is_main:
                restart = f"; epoch {self.train_state.epoch + 1} restarts from its beginning" if self.train_state.step else ""
                print(f"note: resuming {len(processes)} processes' run on {self.env.world_size}; RNG streams restart{restart}",
                      file=sys.stderr)
            self.train_state.step = 0
        mine = processes[self.env.rank % len(processes)]
        set_rng_state(mine["rng"])
        self.mixer.load_state_dict(mine["mixer"])


class SkippedVideos:
    """The ``(path, reason)`` of every video a process or its loader workers found broken, over the
    datasets given, gathered from every process (a resumed run still reports those skipped before)."""

    def __init__(self, datasets: list[VideoClipDataset | VideoTestDataset]) -> None:
        self.datasets = datasets

    def local(self) -> list[tuple[str, str]]:
        return [s for dataset in self.datasets for s in dataset.skipped()]

    def state_dict(self) -> list[list[str]]:
        return [list(s) for s in sorted({tuple(s) for part in D.gather_objects(self.local()) for s in part})]

    def load_state_dict(self, skipped: list[list[str]]) -> None:
        for dataset in self.datasets:
            dataset.mark_skipped(skipped)
