"""Reading a ``.pt`` file without running its code: ``torch.load(weights_only=True)``, with a
missing, truncated or foreign file as one :class:`~vidgrid.errors.CheckpointError` line naming it
(vidgrid's own checkpoints and the PySlowFast / PyTorchVideo ones ``vidgrid convert`` reads)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from vidgrid.errors import CheckpointError, first_line


def read_torch_file(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a missing or unreadable file is a :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # torch warns about a raw pickle before refusing it: the refusal is the message
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or foreign file: {load_failure(e)})") from None


def load_failure(error: Exception) -> str:
    """What ``torch.load`` found wrong, in a few words: the weights-only unpickler's own finding without
    the advice around it (which suggests ``weights_only=False``, running the file's code)."""
    return first_line(error, str(error).split("WeightsUnpickler error:", 1)[-1])
