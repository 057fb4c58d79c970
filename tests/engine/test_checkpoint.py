"""Checkpoint files: atomic writes, keep-last-k, refusing truncated or foreign files."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from vidgrid.engine.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    load_latest,
    load_model_weights,
    rng_state,
    save_atomic,
    set_rng_state,
    write_checkpoint,
)
from vidgrid.errors import CheckpointError


def _state(iteration: int) -> dict:
    return {
        "model": {"w": torch.full((3,), float(iteration))},
        "config": {"model": {"name": "tiny"}},
        "classes": ["a", "b"],
        "epoch": 0,
        "iteration": iteration,
    }


def test_write_keeps_last_k_and_leaves_no_temporaries(tmp_path):
    for it in range(1, 6):
        write_checkpoint(_state(it), tmp_path, iteration=it, keep=2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["ckpt-000000004.pt", "ckpt-000000005.pt"]
    assert sorted(os.listdir(tmp_path)) == names  # no temporary files left behind
    assert load_checkpoint(tmp_path / names[-1])["model"]["w"].tolist() == [5.0] * 3


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt-000000001.pt"
    save_atomic(_state(1), path)

    def broken_save(obj, f):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="ckpt-000000001.pt: cannot write the checkpoint"):
        save_atomic(_state(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 1
    assert os.listdir(tmp_path) == [path.name]


def test_truncated_file_is_refused_and_previous_used(tmp_path):
    write_checkpoint(_state(1), tmp_path, iteration=1, keep=3)
    newest = write_checkpoint(_state(2), tmp_path, iteration=2, keep=3)
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="ckpt-000000002.pt: not a readable checkpoint"):
        load_checkpoint(newest)
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint"):
        ckpt, path = load_latest(tmp_path)
    assert ckpt["iteration"] == 1 and path.name == "ckpt-000000001.pt"


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as refused:
        load_checkpoint(text)
    assert "weights_only" not in str(refused.value)  # torch's finding, not its advice to unpickle unsafely
    other = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a vidgrid checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    assert load_latest(tmp_path / "nothing") is None


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    save_atomic({**_state(1), "rng": state}, tmp_path / "c.pt")
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_weights_of_another_architecture_name_the_keys():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).state_dict()
    with pytest.raises(CheckpointError, match=r"missing 2 \(1.weight, 1.bias\); unexpected 2 \(2.weight"):
        load_model_weights(model, other, source="ckpt.pt")
    resized = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3)).state_dict()
    with pytest.raises(CheckpointError, match=r"shape mismatch 2 \(1.weight \(3, 8\) vs \(2, 8\)"):
        load_model_weights(model, resized, source="ckpt.pt")
