"""The engine knows tasks only through their interface: a task registered from outside the package
(here, predicting whether a video's class id is even) trains, validates, checkpoints and reports
with no change to the engine."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from vidgrid.engine import trainer
from vidgrid.engine.checkpoint import list_checkpoints, load_checkpoint
from vidgrid.tasks import base
from vidgrid.tasks.base import Task, register_task


class Parity(Task):
    """Two outputs: is the class id even or odd."""

    name = "parity"
    best_metric = "parity_acc"

    @property
    def num_outputs(self) -> int:
        return 2

    def target(self, sample):
        return torch.tensor(sample.label % 2)

    def soft_targets(self, targets, smoothing):
        return F.one_hot(targets, 2).float() * (1 - smoothing) + smoothing / 2

    def loss(self, outputs, targets):
        return torch.sum(-targets * F.log_softmax(outputs.float(), dim=-1), dim=-1).mean()

    def aggregate_views(self, outputs):
        return torch.softmax(outputs.float(), dim=-1).mean(dim=1)

    def metrics(self, scores, targets):
        return {"parity_acc": (scores.argmax(1) == targets).float().mean().item()}

    def empty_metrics(self):
        return {"parity_acc": 0.0}

    def record(self, scores, target, *, top=5):
        return {"odd": bool(target), "p_odd": round(float(scores[1]), 4)}

    def format_metrics(self, metrics):
        return f"parity {100 * metrics['parity_acc']:.1f}%"


@pytest.fixture
def parity(monkeypatch):
    monkeypatch.setattr(base, "TASKS", base.TASKS.copy())  # registered for this test only
    register_task(Parity)


@pytest.mark.slow
def test_a_task_registered_outside_the_package_trains_end_to_end(parity, tiny_config, tmp_path):
    cfg = tiny_config("task.name=parity", "train.epochs=2", "train.mixup_alpha=0.8", "train.label_smoothing=0.1")
    summary = trainer.train(cfg, tmp_path / "run")
    assert summary["task"] == "parity"
    assert summary["best"]["metric"] == "parity_acc" and summary["best"]["value"] == max(
        r["parity_acc"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        if r["split"] == "val"
    )
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and set(rows[0]) == {"path", "odd", "p_odd"}
    # the reported accuracy is that of the final predictions: odd iff p(odd) > 1/2
    assert summary["parity_acc"] == pytest.approx(sum((r["p_odd"] > 0.5) == r["odd"] for r in rows) / len(rows))
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert ckpt["task"] == "parity" and ckpt["model"]["head.fc.weight"].shape[0] == 2
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
