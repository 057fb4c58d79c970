"""Checkpoints that survive crashes: atomic writes, the last k kept, safe loading.

A checkpoint is one ``dict`` saved with :func:`torch.save` and read back with
``torch.load(weights_only=True)`` (no pickled code runs on load). Its keys:

``model``       state dict of the unwrapped model (plain BatchNorm keys, loads without multigrid)
``config``      the run config as a plain dict (:func:`vidgrid.config.config_to_dict`)
``classes``     class names, index = label
``task``        the task the model was trained for (:mod:`vidgrid.tasks`)
``train``       the run's stateful parts (:mod:`vidgrid.engine.state`): counters (``state``: epoch,
                step, iteration, ...), optimizer, scaler, sampler position, RNG streams, skipped videos

Files are ``checkpoints/ckpt-<iteration>.pt``, and ``checkpoints/best.pt`` (``best-<metric>.pt``
per metric for a task with several heads) a second name (a hard link) of the one with the best
validation; a write goes to a temporary file in the same folder that is fsync'ed, renamed over the
final name and the folder fsync'ed, so a crash leaves either the old or the new file, never half of
one (the temporaries a killed write leaves behind are removed by :func:`remove_temporaries` when the
next run starts). A write that fails (a full disk) is one
:class:`CheckpointError` naming the file and the previous checkpoint, which stays intact. Files get
the process umask's permissions, so a group can share a run folder. Rotation keeps the ``keep``
newest by iteration of the run being written: files of a higher iteration are from a run this one
replaced (resumed from an earlier checkpoint) and are removed, so ``--resume auto`` never picks them.
Resume takes the newest readable file and falls back to an older one with a warning when the
newest is truncated.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidgrid.errors import NO_SPACE, CheckpointError, first_line, no_space
from vidgrid.torch_file import read_torch_file

CHECKPOINT_KEYS = ("model", "config", "classes")
_PREFIX, _SUFFIX = "ckpt-", ".pt"


def checkpoint_path(folder: Path, iteration: int) -> Path:
    """``folder/ckpt-000001234.pt``: names sort in the order they were written."""
    return folder / f"{_PREFIX}{iteration:09d}{_SUFFIX}"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{_PREFIX}*{_SUFFIX}") if p.name[len(_PREFIX) : -len(_SUFFIX)].isdigit())


def _iteration(path: Path) -> int:
    return int(path.name[len(_PREFIX) : -len(_SUFFIX)])


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of writes that were killed midway (no run writes into ``folder`` now)."""
    stale = sorted([*folder.glob(f".{_PREFIX}*{_SUFFIX}.*.tmp"), *folder.glob(".best.*.tmp")]) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class _Writes:
    """A file's writes, remembering the OSError (a full disk) that torch reports as a RuntimeError."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _write_failure(error: BaseException) -> str:
    """Why a write failed, in a few words: a full disk or quota, else the error's first line."""
    if no_space(error):
        return NO_SPACE
    return (error.strerror if isinstance(error, OSError) else None) or first_line(error)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename over ``path``, fsync the folder.
    Raises :class:`CheckpointError` when the file cannot be written; ``path`` is then untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    writes = None
    try:
        with open(tmp, "xb") as f:  # created with the umask's permissions (mkstemp would force 0600)
            writes = _Writes(f)
            torch.save(obj, writes)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        reason = _write_failure(writes.error if writes is not None and writes.error is not None else e)
        raise CheckpointError(f"{path}: cannot write the checkpoint ({reason})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_checkpoint(state: dict[str, Any], folder: Path, *, iteration: int, keep: int, previous: Path | None = None) -> Path:
    """Save ``state`` atomically as ``folder/ckpt-<iteration>.pt``; keep the newest ``keep`` up to this
    iteration and delete those of higher iterations (a replaced run's). A failed write names
    ``previous``, the run's last good checkpoint."""
    path = checkpoint_path(folder, iteration)
    try:
        save_atomic(state, path)
    except CheckpointError as e:
        kept = f"the last checkpoint is {previous}" if previous else "no checkpoint was written yet"
        raise CheckpointError(f"{e}; the run stopped and {kept}") from None
    older = [p for p in list_checkpoints(folder) if _iteration(p) <= iteration]
    replaced = [p for p in list_checkpoints(folder) if _iteration(p) > iteration]
    for old in older[:-keep] + replaced:
        old.unlink(missing_ok=True)
    return path


def link_best(path: Path, name: str = "best.pt") -> Path:
    """Make ``path`` also ``name`` (``best.pt``, ``best-<metric>.pt``) in its folder: a hard link (no
    second copy on disk; rotation removing the ``ckpt-`` name leaves it), a copy where links are not
    supported; replaced atomically."""
    best = path.parent / name
    tmp = path.parent / f".best.{secrets.token_hex(4)}.tmp"
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, best)
    return best


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a vidgrid checkpoint with ``weights_only=True``; a missing, truncated or foreign file is a
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CHECKPOINT_KEYS):
        raise CheckpointError(f"{path}: not a vidgrid checkpoint (expected the keys {', '.join(CHECKPOINT_KEYS)})")
    return ckpt


def load_latest(folder: Path) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in ``folder`` (older ones are tried with a warning), or None."""
    for path in reversed(list_checkpoints(folder)):
        try:
            return load_checkpoint(path), path
        except CheckpointError as e:
            warnings.warn(f"skipping unreadable checkpoint: {e}; trying the previous one", stacklevel=2)
    return None


# --------------------------------------------------------------------------------------------------
# RNG state (python, numpy, torch, CUDA) as weights_only-loadable tensors


def rng_state() -> dict[str, Any]:
    """Every RNG the training step draws from, as tensors and ints (``weights_only`` can load them)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, torch.tensor(mt, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in mt.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------------
# model weights


def load_model_weights(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """``model.load_state_dict(state)``, or a one-line :class:`CheckpointError` naming the mismatched keys
    (a checkpoint of another architecture, or another number of classes)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [
            f"{label} {len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
            if keys
        ]
        arch = type(model).__name__
        raise CheckpointError(f"{source}: weights do not fit the {arch} model (another architecture?): {'; '.join(parts)}")
    model.load_state_dict(state)
