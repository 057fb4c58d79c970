"""Best checkpoints per metric: the record of each metric, and a run resumed from a checkpoint
written when a run kept one best metric."""

from __future__ import annotations

import json

import pytest
import torch

from vidgrid.engine import trainer
from vidgrid.engine.checkpoint import list_checkpoints
from vidgrid.engine.state import TrainState


def test_each_metric_keeps_its_own_best():
    state = TrainState()
    sequence = [{"top1": 0.2, "iou": 0.5}, {"top1": 0.4, "iou": 0.5}, {"top1": 0.3, "iou": 0.6}]
    improved = []
    for epoch, metrics in enumerate(sequence, 1):
        state.epoch = epoch
        improved.append(state.improves(metrics, ["top1", "iou"]))
    assert improved == [["top1", "iou"], ["top1"], ["iou"]]  # a tie is no improvement
    assert state.best == {"top1": {"value": 0.4, "epoch": 2}, "iou": {"value": 0.6, "epoch": 3}}


@pytest.mark.slow
def test_a_run_resumes_from_a_checkpoint_with_one_best_record(tiny_config, tmp_path):
    trainer.train(tiny_config("train.epochs=1"), tmp_path / "run")
    folder = tmp_path / "run" / "checkpoints"
    path = list_checkpoints(folder)[-1]
    ckpt = torch.load(path, weights_only=False)
    best = ckpt["train"]["state"]["best"]["top1"]
    ckpt["train"]["state"]["best"] = best  # the flat {"value", "epoch"} of runs with one best metric
    torch.save(ckpt, path)
    summary = trainer.train(tiny_config("train.epochs=2"), tmp_path / "run", resume="auto")
    assert summary["best"]["metric"] == "top1" and summary["best_epochs"]["top1"] in (1, 2)
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["best"]["checkpoint"] == str(folder / "best.pt") and (folder / "best.pt").is_file()
