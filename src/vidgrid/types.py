"""Small value types shared by the data pipeline, the multigrid schedule and the engine (no torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ClipShape:
    """The spatio-temporal shape of every clip in one mini-batch: ``frames`` t × ``crop`` s².

    The batch sampler picks a shape per mini-batch; the dataset resamples each video on a grid that
    yields it (multigrid paper §3.1).
    """

    frames: int
    crop: int

    def __str__(self) -> str:
        return f"{self.frames}x{self.crop}²"
