"""Stop requests: SIGTERM / SIGINT end a training run with a checkpoint, however they arrive.

Clusters send SIGTERM before killing a job, often to every process at once and through ``torchrun``,
which forwards the signal again; a terminal sends SIGINT to the whole process group. So:

- the first SIGTERM or SIGINT sets a flag; the loop finishes the current iteration (or abandons a
  validation), writes a checkpoint and exits with 128 + the signal (143 for SIGTERM);
- a repeated SIGTERM, and any signal within :data:`REPEAT_WINDOW_S` of the first (the same request
  delivered twice), is ignored: it must not kill a process that is writing its checkpoint;
- a later SIGINT is a deliberate second Ctrl-C and interrupts at once (no checkpoint);
- once a run has stopped, SIGTERM stays ignored until the process exits;
- while a single-process run waits for its loader (a stalled read or decode), the request raises
  :class:`StopWhileWaiting`, so the loop can write the checkpoint of the last completed iteration
  instead of waiting on data that may never come. (In a multi-process run the peers may be inside a
  collective; there the loader timeout, ``data.loader_timeout_s``, ends the wait.)

DataLoader workers ignore both signals: they belong to the training process, which ends them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPEAT_WINDOW_S = 2.0
"""Signals this soon after the first are the same stop request delivered twice (torchrun forwarding)."""


class StopWhileWaiting(BaseException):
    """A stop request arrived while the training process was waiting for its data loader (a
    BaseException, like KeyboardInterrupt: no ``except Exception`` on the way may swallow it)."""


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM / SIGINT to the training process (a cluster or Ctrl-C signals
    the whole process group); they end when the loader does."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequest:
    """Records the first SIGTERM / SIGINT (``signal`` = its name); see the module docstring."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self.received_at = 0.0
        self.waiting = False
        """Set while a single-process run blocks on its loader: a stop request then interrupts the wait."""

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signal is None:
            self.signal, self.received_at = name, time.monotonic()
            print(f"\n{name}: finishing this iteration, then writing a checkpoint", file=sys.stderr, flush=True)
            if self.waiting:
                self.waiting = False
                raise StopWhileWaiting(name)
        elif signum == signal.SIGINT and time.monotonic() - self.received_at > REPEAT_WINDOW_S:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in previous:
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self.signal is not None:  # stopped: a late duplicate must not turn the exit status 143 into a kill
                signal.signal(signal.SIGTERM, signal.SIG_IGN)


def exit_status(summary: dict) -> int:
    """The command's exit status: 0 for a finished run, 128 + the signal's number for a stopped one
    (143 for SIGTERM, as if the signal had ended it), so a job script or torchrun sees it did not finish."""
    stopped = summary.get("preempted")
    return 128 + signal.Signals[stopped].value if stopped else 0


def resume_command(config: Path, out_dir: Path, *, world_size: int) -> str:
    """The command that continues a stopped run: ``torchrun`` with the same process count when it had
    several (``LOCAL_WORLD_SIZE`` per node, as torchrun set it; another count also works, from the
    start of the stopped epoch)."""
    command = f"vidgrid train {config} --out {out_dir} --resume auto"
    if world_size == 1:
        return command
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    nodes = f"--nnodes {world_size // per_node} " if per_node < world_size else ""
    return f"torchrun {nodes}--nproc-per-node {per_node} -m {command}"
