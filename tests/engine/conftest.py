"""Shared fixtures of the engine tests: one tiny synthetic dataset and tiny training recipes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vidgrid.config import Config, load_config
from vidgrid.data.synthetic import write_synthetic_dataset

@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """One OpenMP thread in subprocesses too: deterministic, and no spinning when 2 cores are shared
    (the suite-wide fixture in ``tests/conftest.py`` already sets torch's own thread count)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


TINY_MODEL = ["model.name=x3d_xs", "model.options={width_factor: 0.5, depth_factor: 0.5}", "model.dropout=0.0"]


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 classes × (2 train, 1 val) videos of 16 frames at 32×32 px (``train.csv``, ``val.csv``)."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, seed=0, train_per_class=2, val_per_class=1, frames=16, width=32, height=32, workers=1)
    return root


def tiny_overrides(data: Path, *extra: str) -> list[str]:
    """Dotted overrides of a tiny CPU run on ``data``: an X3D of ~0.3 M parameters, 4×32² clips,
    batch 8, one temporal view; ``extra`` overrides come last."""
    return [
        f"data.train_list={data / 'train.csv'}",
        f"data.val_list={data / 'val.csv'}",
        "data.frames=4",
        "data.sampling_rate=2",
        "data.crop=32",
        "data.min_short=32",
        "data.max_short=36",
        "data.workers=0",
        *TINY_MODEL,
        "optim.name=adamw",
        "optim.lr=0.003",
        "optim.weight_decay=0.0",
        "schedule.policy=cosine",
        "schedule.steps=[0]",  # one stage: the demo recipe's second one starts at epoch 21
        "schedule.lrs=[1.0]",
        "train.batch_size=8",
        "train.epochs=2",
        "train.log_every=1",
        "train.device=cpu",
        "eval.clips=1",
        "eval.crops=1",
        *extra,
    ]


@pytest.fixture
def tiny_config(synthetic_data: Path) -> Callable[..., Config]:
    """``tiny_config(*overrides) -> Config`` of a tiny run on the shared dataset."""

    def make(*extra: str) -> Config:
        return load_config(None, tiny_overrides(synthetic_data, *extra))

    return make


@pytest.fixture
def tiny_args(synthetic_data: Path) -> Callable[..., list[str]]:
    """``tiny_args(*overrides) -> list[str]``: the same recipe as command-line overrides."""
    return lambda *extra: tiny_overrides(synthetic_data, *extra)
