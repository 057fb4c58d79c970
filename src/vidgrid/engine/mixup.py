"""Mixup and CutMix on video batches, on the device, with soft (label-smoothed) targets.

Mixup (Zhang et al., ICLR 2018): ``x = λ·x_i + (1-λ)·x_j``, ``λ ~ Beta(α, α)``. CutMix (Yun et al.,
ICCV 2019): a box of area ``(1-λ)·H·W`` from ``x_j`` pasted into ``x_i``, the same box in every frame,
``λ`` then corrected to the area actually kept. Targets mix with the same ``λ``, as the task says
(:meth:`vidgrid.tasks.Task.mix_targets`), after its label smoothing. Practitioner's notes explains
the MViT choice α = 0.8 for Mixup and α = 1.0 for CutMix (larger α, stronger mixing); with both on,
each batch uses one of them (CutMix with probability ``switch_prob``).

Layouts: clips ``float (B, C, T, H, W)``; targets as the task's loader gives them (class ids
``(B,)``, multi-hot ``(B, K)``); soft targets as its :meth:`~vidgrid.tasks.Task.soft_targets` returns.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from vidgrid.config import TrainConfig
from vidgrid.errors import ConfigError
from vidgrid.tasks import Task


def cutmix_box(height: int, width: int, lam: float, rng: random.Random) -> tuple[int, int, int, int]:
    """A box ``(y0, y1, x0, x1)`` of about ``(1-λ)·H·W`` pixels centred uniformly, clipped to the frame."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = rng.randrange(height), rng.randrange(width)
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return y0, y1, x0, x1


def mixup_clips(clips: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """``λ·x + (1-λ)·x[perm]`` for ``(B, C, T, H, W)`` clips."""
    return clips.mul(lam).add_(clips[perm], alpha=1.0 - lam)


def cutmix_clips(clips: torch.Tensor, perm: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """``x`` with the H×W ``box`` of every frame taken from ``x[perm]``; returns a new tensor."""
    y0, y1, x0, x1 = box
    out = clips.clone()
    out[..., y0:y1, x0:x1] = clips[perm][..., y0:y1, x0:x1]  # (B, C, T, H, W): same box in all frames
    return out


@dataclass
class MixResult:
    """What one call of :class:`Mixer` did (for logging and tests)."""

    clips: torch.Tensor
    """Mixed clips ``float (B, C, T, H, W)``."""
    targets: torch.Tensor
    """Soft targets (the task's layout, e.g. ``float (B, K)``)."""
    lam: float
    """Weight of the original sample (after the CutMix area correction); 1 = no mixing."""
    mode: str
    """``mixup``, ``cutmix`` or ``none``."""


class Mixer:
    """Per-batch Mixup / CutMix with the task's label smoothing; turns any target batch into soft targets.

    With both α = 0 it only converts (and smooths) the targets. Randomness comes from its own
    ``random.Random(seed)``, saved by :meth:`state_dict` so a resumed run mixes identically.
    """

    def __init__(
        self,
        task: Task,
        *,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.0,
        seed: int = 0,
    ) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError("mixup/cutmix alphas must be >= 0")
        if (mixup_alpha or cutmix_alpha) and not task.mixable:
            raise ConfigError(f"'train.mixup_alpha' / 'train.cutmix_alpha': the {task.name} task's targets cannot be mixed (set both to 0)")
        self.task = task
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self.rng = random.Random(seed)

    @property
    def enabled(self) -> bool:
        """Whether clips are mixed at all (otherwise only targets are converted)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def _choose(self) -> str:
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            return "cutmix" if self.rng.random() < self.switch_prob else "mixup"
        if self.cutmix_alpha > 0:
            return "cutmix"
        return "mixup" if self.mixup_alpha > 0 else "none"

    def __call__(self, clips: torch.Tensor, targets: torch.Tensor) -> MixResult:
        """Mix a batch ``float (B, C, T, H, W)`` and its targets."""
        soft = self.task.soft_targets(targets, self.label_smoothing)
        mode = self._choose()
        if mode == "none" or clips.shape[0] < 2:
            return MixResult(clips, soft, 1.0, "none")
        order = list(range(clips.shape[0]))
        self.rng.shuffle(order)
        perm = self.task.mix_partners(targets, torch.tensor(order, device=clips.device))
        if mode == "mixup":
            lam = self.rng.betavariate(self.mixup_alpha, self.mixup_alpha)
            mixed = mixup_clips(clips, perm, lam)
        else:
            height, width = clips.shape[-2:]
            box = cutmix_box(height, width, self.rng.betavariate(self.cutmix_alpha, self.cutmix_alpha), self.rng)
            y0, y1, x0, x1 = box
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)  # the area actually kept
            mixed = cutmix_clips(clips, perm, box)
        return MixResult(mixed, self.task.mix_targets(soft, perm, lam), lam, mode)

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


def mixer_from_config(train: TrainConfig, task: Task, *, seed: int) -> Mixer:
    """A :class:`Mixer` from the ``train`` section (``mixup_alpha``, ``cutmix_alpha``, ...)."""
    return Mixer(
        task,
        mixup_alpha=train.mixup_alpha,
        cutmix_alpha=train.cutmix_alpha,
        switch_prob=train.mix_switch_prob,
        label_smoothing=train.label_smoothing,
        seed=seed,
    )


def beta_density(alpha: float, lam: float) -> float:
    """Density of the mixing ratio ``λ ~ Beta(α, α)`` at ``0 < λ < 1``."""
    log_norm = 2 * math.lgamma(alpha) - math.lgamma(2 * alpha)
    return math.exp((alpha - 1) * (math.log(lam) + math.log1p(-lam)) - log_norm)


def hard_mix_probability(alpha: float, steps: int = 10_000) -> float:
    """P(0.25 < λ < 0.75) under Beta(α, α): how often two clips mix with at least a quarter of each
    (midpoint rule; the interval avoids the poles at 0 and 1 of α < 1). Small α keeps λ near 0 or 1
    (weak mixing), α = 1 is uniform (0.5), larger α mixes harder (practitioner's notes on Mixup)."""
    width = 0.5 / steps
    return sum(beta_density(alpha, 0.25 + (k + 0.5) * width) for k in range(steps)) * width
