"""The training process's DataLoaders: one factory, a bound on how long a batch may take, and
workers that always end.

A loader worker can stall for good (a hung network file system read, a decoder stuck on a file, a
stopped process). A batch that takes longer than ``data.loader_timeout_s`` is then one
:class:`~vidgrid.errors.DataError` naming that setting, instead of a run that hangs forever. The
bound is a SIGALRM timer around each wait rather than the DataLoader's own ``timeout``, which covers
only the queue poll: a stopped worker can also hang the hand-over of a batch's shared memory. On leaving :func:`loading` (finished,
stopped or failed) the workers are killed: they ignore SIGTERM (see :mod:`vidgrid.engine.stopping`)
and a stalled one would never join, so an interpreter exit would wait on it forever. A worker whose
batch hand-over the training process abandons (it stopped while receiving the batch's shared memory)
stays quiet: the training process reports the stop in one line, the worker adds no traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import resource_sharer
from types import TracebackType
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils import signal_handling

from vidgrid.data.collate import pad_collate
from vidgrid.engine.stopping import StopRequest, ignore_stop_signals
from vidgrid.errors import DataError


def make_loader(
    dataset: Dataset, *, workers: int, seed: int, batch_sampler: Iterable[Any] | None = None, batch_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader in order (``batch_sampler`` or plain batches of ``batch_size``) whose workers ignore
    stop signals; clips of different frame sizes are padded to one (:func:`~vidgrid.data.collate.pad_collate`)."""
    # a private generator: creating the loader must not draw from the global RNG (exact resume)
    return DataLoader(
        dataset, batch_sampler=batch_sampler, batch_size=1 if batch_sampler is not None else batch_size,
        num_workers=workers, pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_init_worker, collate_fn=pad_collate,
    )


ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]
"""sys.excepthook's signature."""


def _init_worker(worker_id: int) -> None:
    """A loader worker leaves stop signals to the training process and keeps quiet about hand-overs it abandons."""
    ignore_stop_signals(worker_id)
    sys.excepthook = _quiet_about_abandoned_handovers(sys.excepthook)


def _quiet_about_abandoned_handovers(report: ExceptHook) -> ExceptHook:
    """``report`` (an excepthook), except for errors of the thread that hands a batch's shared memory to
    the training process (:mod:`multiprocessing.resource_sharer`): those mean the training process
    stopped mid-transfer (a stop request, an exit), which it reports itself."""

    def excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if any(frame.filename == resource_sharer.__file__ for frame in traceback.extract_tb(tb)):
            return
        report(kind, error, tb)

    return excepthook


class _Stalled(BaseException):
    """Raised by the timer inside the wait; a BaseException, so no ``except Exception`` on the way (a
    decoder's, in a worker-less loader) mistakes it for a broken video."""


def _alarm(signum: int, frame: object) -> None:
    raise _Stalled


@contextlib.contextmanager
def loading(
    loader: DataLoader, *, timeout_s: float, interruptible: StopRequest | None = None, until: StopRequest | None = None,
) -> Iterator[Iterator[Any]]:
    """Iterate ``loader``, waiting at most ``timeout_s`` for each batch (0 = for ever); its workers are
    killed on leaving the block. ``interruptible``: a stop request that arrives while waiting for a
    batch raises :class:`~vidgrid.engine.stopping.StopWhileWaiting`. ``until``: the batches end early
    once a stop is requested (a validation that is abandoned)."""
    batches = iter(loader)
    previous = signal.signal(signal.SIGALRM, _alarm)
    gen = _batches(batches, timeout_s, interruptible, until)
    try:
        yield gen
    finally:
        gen.close()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _end_workers(batches)


def _batches(batches: Iterator[Any], timeout_s: float, interruptible: StopRequest | None, until: StopRequest | None) -> Iterator[Any]:
    while until is None or until.signal is None:
        if interruptible is not None:
            interruptible.waiting = True
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            batch = next(batches)
        except StopIteration:
            return
        except _Stalled:
            raise DataError(
                f"no batch from the data loader within {timeout_s:g} s: a read or decode stalled (a hung network "
                "file system?); raise 'data.loader_timeout_s' if batches can legitimately take that long"
            ) from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
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
