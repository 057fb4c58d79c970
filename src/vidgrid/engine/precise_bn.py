"""Precise BatchNorm statistics (PySlowFast's ``BN.USE_PRECISE_STATS``): before a validation, the
running statistics are replaced by their average over training batches at the base shape, since the
exponential average of a multigrid run mixes whatever shapes its last iterations had."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, batches: Iterable[Any],
                            forward: Callable[[nn.Module, Any], Any] = lambda model, batch: model(batch)) -> int:
    """Replace the running statistics of every BatchNorm in ``model`` by their equal-weight average
    over ``batches`` (inputs of ``model``, run through ``forward`` in training mode without gradients); returns the
    number of batches used. The model's mode and the layers' momenta are restored afterwards; with no
    batch the statistics are left as they were."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum) for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: batch k weighs 1/k
    model.train()
    used = 0
    try:
        for batch in batches:
            forward(model, batch)
            used += 1
    finally:
        for m, (mean, var, tracked, momentum) in zip(layers, saved):
            m.momentum = momentum
            if used == 0:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(tracked)
        model.train(was_training)
    return used
