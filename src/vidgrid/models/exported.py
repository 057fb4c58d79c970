"""An exported model folder (``vidgrid export``): weights in ``model.safetensors`` beside ``model.json``,
the sidecar that names the registered model, its options and classes and the test preprocessing.

:func:`load_exported` rebuilds the model from the two files alone: ``create_model`` with the sidecar's
options, then the tensors of the safetensors file (no pickle is read, unlike a ``torch.load``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from vidgrid.errors import CheckpointError, ModelError
from vidgrid.models.registry import create_model

SIDECAR = "model.json"
WEIGHTS = "model.safetensors"
SIDECAR_KEYS = ("model", "classes", "task", "preprocessing")


def read_sidecar(folder: str | Path) -> dict[str, Any]:
    """The ``model.json`` of an export folder; a missing file or key is a one-line error."""
    path = Path(folder) / SIDECAR
    try:
        sidecar = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (expected a folder written by vidgrid export)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not JSON ({e})") from None
    missing = [k for k in SIDECAR_KEYS if k not in sidecar]
    if not isinstance(sidecar, dict) or missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)} (expected the keys {', '.join(SIDECAR_KEYS)})")
    return sidecar


def load_exported(folder: str | Path) -> nn.Module:
    """The model of an export folder (``model.json`` + ``model.safetensors``), in eval mode.

    The sidecar's ``model`` entry is ``{"name", "num_classes", "options"}``: the arguments of
    :func:`create_model`; every tensor of the safetensors file must match the rebuilt model."""
    folder = Path(folder)
    spec = read_sidecar(folder)["model"]
    try:
        model = create_model(spec["name"], num_classes=int(spec["num_classes"]), **spec.get("options", {}))
    except ModelError as e:
        raise CheckpointError(f"{folder / SIDECAR}: {e}") from None
    path = folder / WEIGHTS
    try:
        state = load_file(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (export with --format safetensors)") from None
    except SafetensorError as e:
        raise CheckpointError(f"{path}: not a safetensors file ({e})") from None
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise CheckpointError(
            f"{path}: does not fit {spec['name']} ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} of another shape, e.g. {first})"
        )
    model.load_state_dict(state)
    return model.eval()
