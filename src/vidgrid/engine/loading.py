"""The training process's DataLoaders: one factory, a bound on how long a batch may take, and
workers that always end.

A loader worker can stall for good (a hung network file system read, a decoder stuck on a file). A
batch that takes longer than ``data.loader_timeout_s`` is then one :class:`~vidgrid.errors.DataError`
naming that setting, instead of a run that hangs forever. On leaving :func:`loading` (finished,
stopped or failed) the workers are killed: they ignore SIGTERM (see :mod:`vidgrid.engine.stopping`)
and a stalled one would never join, so an interpreter exit would wait on it forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils import signal_handling

from vidgrid.engine.stopping import StopRequest, ignore_stop_signals
from vidgrid.errors import DataError


def make_loader(
    dataset: Dataset, *, workers: int, seed: int, timeout_s: float, batch_sampler: Iterable[Any] | None = None,
    batch_size: int = 1, pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader in order (``batch_sampler`` or plain batches of ``batch_size``) whose workers ignore
    stop signals; ``timeout_s`` bounds the wait for one batch (0 = no bound; workers only)."""
    # a private generator: creating the loader must not draw from the global RNG (exact resume)
    return DataLoader(
        dataset, batch_sampler=batch_sampler, batch_size=1 if batch_sampler is not None else batch_size,
        num_workers=workers, pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed),
        worker_init_fn=ignore_stop_signals, timeout=timeout_s if workers else 0,
    )


@contextlib.contextmanager
def loading(loader: DataLoader, *, interruptible: StopRequest | None = None, until: StopRequest | None = None) -> Iterator[Iterator[Any]]:
    """Iterate ``loader``; its workers are killed on leaving the block. ``interruptible``: a stop request
    that arrives while waiting for a batch raises :class:`~vidgrid.engine.stopping.StopWhileWaiting`.
    ``until``: the batches end early once a stop is requested (a validation that is abandoned)."""
    batches = iter(loader)
    try:
        yield _batches(batches, loader.timeout, interruptible, until)
    finally:
        _end_workers(batches)


def _batches(batches: Iterator[Any], timeout_s: float, interruptible: StopRequest | None, until: StopRequest | None) -> Iterator[Any]:
    while until is None or until.signal is None:
        if interruptible is not None:
            interruptible.waiting = True
        try:
            batch = next(batches)
        except StopIteration:
            return
        except RuntimeError as e:
            if "DataLoader timed out" not in str(e):
                raise
            raise DataError(
                f"no batch from the data loader's workers within {timeout_s:g} s: a read or decode stalled (a hung "
                "network file system?); raise 'data.loader_timeout_s' if batches can legitimately take that long"
            ) from None
        finally:
            if interruptible is not None:
                interruptible.waiting = False
        yield batch


def _end_workers(batches: Iterator[Any]) -> None:
    """Kill the loader's workers (stalled ones included), then let the loader close its queues."""
    workers = getattr(batches, "_workers", None)  # only multi-process loaders have workers
    if workers is None:
        return
    if getattr(batches, "_worker_pids_set", False):  # killing them must not look like a worker crash
        signal_handling._remove_worker_pids(id(batches))
        batches._worker_pids_set = False
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    batches._shutdown_workers()
