"""Checkpoints that survive crashes: atomic writes, the last k kept, safe loading (issue 6 §2).

A checkpoint is one ``dict`` saved with :func:`torch.save` and read back with
``torch.load(weights_only=True)`` (no pickled code runs on load). Its keys:

``model``       state dict of the unwrapped model (plain BatchNorm keys, loads without multigrid)
``config``      the run config as a plain dict (:func:`vidgrid.config.config_to_dict`)
``classes``     class names, index = label
``epoch``       the epoch being trained (an epoch-end checkpoint names the *next* epoch)
``iteration``   global optimizer steps done so far
``train``       resumable training state: optimizer, scaler, sampler position, RNG states, counters

Files are ``checkpoints/ckpt-<iteration>.pt``; a write goes to a temporary file in the same folder
that is fsync'ed, renamed over the final name and the folder fsync'ed, so a crash leaves either the
old or the new file, never half of one. Resume takes the newest readable file and falls back to an
older one with a warning when the newest is truncated.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidgrid.errors import CheckpointError

CHECKPOINT_KEYS = ("model", "config", "classes", "epoch", "iteration")
_PREFIX, _SUFFIX = "ckpt-", ".pt"


def checkpoint_path(folder: Path, iteration: int) -> Path:
    """``folder/ckpt-000001234.pt``: names sort in the order they were written."""
    return folder / f"{_PREFIX}{iteration:09d}{_SUFFIX}"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{_PREFIX}*{_SUFFIX}") if p.name[len(_PREFIX) : -len(_SUFFIX)].isdigit())


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename over ``path``, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_checkpoint(state: dict[str, Any], folder: Path, *, keep: int) -> Path:
    """Save ``state`` atomically as ``folder/ckpt-<iteration>.pt`` and delete all but the newest ``keep``."""
    path = checkpoint_path(folder, int(state["iteration"]))
    save_atomic(state, path)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a vidgrid checkpoint with ``weights_only=True``; a missing, truncated or foreign file is a
    :class:`CheckpointError` naming the file."""
    path = Path(path)
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CHECKPOINT_KEYS):
        raise CheckpointError(f"{path}: not a vidgrid checkpoint (expected the keys {', '.join(CHECKPOINT_KEYS)})")
    return ckpt


def read_torch_file(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``; a missing or unreadable file is a :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or foreign file: {reason[:200]})") from None
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
