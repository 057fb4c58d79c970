"""Optimizers, parameter groups and the learning rate at a point of training.

Recipes: SGD with momentum (X3D supplement §A.3, multigrid paper) or AdamW
(MViTv2, MultiTrain supplement); no weight decay on norms, biases and position embeddings; an LR multiplier for
a pretrained backbone (the practitioner's notes: 0.1); linear scaling of the LR with the batch size (Goyal et al.);
a linear warm-up from a fraction of the LR (the practitioner's notes: 0.01×).

The LR at a fractional epoch is::

    lr(epoch) = scaled_lr(base, batch, reference) × schedule.lr_factor(epoch), warmed up (:func:`lr_at`)

where ``schedule.lr_factor`` (``vidgrid.multigrid.schedule``) is the step/cosine policy times the
multigrid long-cycle multiplier; :func:`set_lr` then applies each group's ``lr_mult``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import torch
from torch import nn

from vidgrid.config import OptimConfig

HEAD_MODULE = "head"
"""Submodule holding the classifier; every other parameter belongs to the backbone."""

_WRAPPER_PREFIXES = ("_orig_mod.", "module.")  # torch.compile, DistributedDataParallel


def _strip_wrappers(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def _no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names from ``model.no_weight_decay()`` of the (possibly wrapped) model."""
    inner = model
    while not hasattr(inner, "no_weight_decay") and isinstance(getattr(inner, "_orig_mod", getattr(inner, "module", None)), nn.Module):
        inner = getattr(inner, "_orig_mod", None) or inner.module
    fn = getattr(inner, "no_weight_decay", None)
    return set(fn()) if callable(fn) else set()


def param_groups(
    model: nn.Module, *, weight_decay: float, backbone_lr_mult: float
) -> list[dict]:
    """Trainable parameters split by (backbone | head) × (decay | no decay).

    No decay for 0-/1-D tensors (norm weights, biases) and for ``model.no_weight_decay()`` names
    (position embeddings, class tokens). Each group carries ``name``, ``weight_decay`` and
    ``lr_mult`` (``backbone_lr_mult`` for the backbone, 1 for ``head``). Empty groups are dropped.
    """
    skip = _no_weight_decay_names(model)
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for raw_name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        name = _strip_wrappers(raw_name)
        part = "head" if name.split(".", 1)[0] == HEAD_MODULE else "backbone"
        decay = p.ndim > 1 and name not in skip
        groups.setdefault((part, decay), []).append(p)
    out = []
    for part in ("backbone", "head"):
        for decay in (True, False):
            params = groups.get((part, decay))
            if params:
                out.append(
                    {
                        "name": f"{part}{'' if decay else '_no_decay'}",
                        "params": params,
                        "weight_decay": weight_decay if decay else 0.0,
                        "lr_mult": backbone_lr_mult if part == "backbone" else 1.0,
                    }
                )
    return out


def build_optimizer(
    model: nn.Module,
    *,
    name: Literal["sgd", "adamw"],
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    backbone_lr_mult: float = 1.0,
) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW over :func:`param_groups`; each group starts at
    ``lr × lr_mult`` (call :func:`set_lr` every iteration to follow the schedule)."""
    groups = param_groups(model, weight_decay=weight_decay, backbone_lr_mult=backbone_lr_mult)
    for g in groups:
        g["lr"] = lr * g["lr_mult"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    raise ValueError(f"unknown optimizer {name!r}")


def optimizer_from_config(model: nn.Module, optim: OptimConfig, *, lr: float) -> torch.optim.Optimizer:
    """:func:`build_optimizer` with the ``optim`` section of a recipe; ``lr`` = the scaled base LR."""
    return build_optimizer(
        model,
        name=optim.name,
        lr=lr,
        momentum=optim.momentum,
        nesterov=optim.nesterov,
        betas=optim.betas,
        weight_decay=optim.weight_decay,
        backbone_lr_mult=optim.backbone_lr_mult,
    )


def scaled_lr(base_lr: float, batch: int, reference_batch: int) -> float:
    """Linear scaling rule: ``base_lr`` is given for ``reference_batch`` clips (0 = for ``batch``)."""
    if reference_batch <= 0:
        return base_lr
    return base_lr * batch / reference_batch


def lr_at(
    epoch: float,
    *,
    base_lr: float,
    warmup_share: float,
    warmup_start_factor: float,
    lr_factor: Callable[[float], float],
    progress: Callable[[float], float],
) -> float:
    """The LR at a fractional epoch: ``base_lr × lr_factor(epoch)``, reached by a linear warm-up
    (Goyal et al.) from ``warmup_start_factor × base_lr`` over the first ``warmup_share`` of the
    run's iterations (``progress``: the schedule's share of iterations done).

    The warm-up starts at the recipe's own LR also under multigrid: it ramps to the long cycle's
    scaled LR (8× at the coarsest shape) instead of starting 8× higher."""
    scheduled = lr_factor(epoch)
    done = progress(epoch)
    if warmup_share <= 0 or done >= warmup_share:
        return base_lr * scheduled
    return base_lr * (warmup_start_factor + (scheduled - warmup_start_factor) * done / warmup_share)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group to ``lr × group["lr_mult"]`` (groups without a multiplier get ``lr``)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)


def clip_grad_norm(parameters: Iterable[nn.Parameter], max_norm: float) -> float:
    """Clip the global L2 norm of the gradients to ``max_norm`` (0 = off); returns the norm before
    clipping (the practitioner's notes: 1.0 for large transformers, 40 for mmaction2 CNN recipes)."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    if max_norm <= 0:
        norms = torch.stack([p.grad.detach().norm(2) for p in params])
        return float(norms.norm(2))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
