"""The two classification tasks: targets, label smoothing, losses, view aggregation, metrics,
records, and how a recipe's ``task.name`` and the annotations choose between them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidgrid.data.annotations import Annotations, Sample
from vidgrid.errors import ConfigError, DataError
from vidgrid.tasks import list_tasks, task_class, task_for
from vidgrid.tasks.classification import Classification, soft_target_cross_entropy
from vidgrid.tasks.multi_label import MultiLabelClassification

SCORES = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
TARGETS = torch.tensor([0, 1, 2, 0])
THREE = ["red", "green", "blue"]


def test_label_smoothing():
    y = Classification(["a", "b", "c", "d"]).soft_targets(torch.tensor([2, 0]), 0.1)
    assert y[0].tolist() == pytest.approx([0.025, 0.025, 0.925, 0.025])
    assert y.sum(1).tolist() == pytest.approx([1.0, 1.0])
    m = MultiLabelClassification(THREE).soft_targets(torch.tensor([[1.0, 0.0, 1.0]]), 0.2)
    assert m[0].tolist() == pytest.approx([0.9, 0.1, 0.9])


def test_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    hard = torch.tensor([0, 1])
    single = Classification(THREE)
    onehot = single.soft_targets(hard, 0.0)
    assert soft_target_cross_entropy(logits, onehot).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, hard).item(), rel=1e-6)
    assert single.loss(logits, hard).item() == pytest.approx(soft_target_cross_entropy(logits, onehot).item())
    multi = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    bce = MultiLabelClassification(THREE).loss(logits, multi)
    assert bce.item() == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(logits, multi).item())


def test_view_aggregation():
    assert Classification(["a", "b", "c", "d"]).aggregate_views(torch.zeros(1, 3, 4)).tolist() == [[0.25] * 4]
    logits = torch.tensor([[[0.0, 2.0], [1.0, -1.0]]])  # (B=1, V=2, K=2)
    assert torch.allclose(MultiLabelClassification(["a", "b"]).aggregate_views(logits),
                          torch.sigmoid(torch.tensor([[1.0, 2.0]])))


def test_metrics():
    single = Classification(THREE).metrics(SCORES, TARGETS)
    assert single == pytest.approx({"top1": 0.5, "top5": 1.0, "mean_class_acc": 0.5})
    multi = MultiLabelClassification(THREE).metrics(SCORES, torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 1, 1], [0, 0, 1]]))
    # AP per class, scores ranked high to low: class 0's positive is 1st (1); class 1's two share the
    # score 0.3 behind a negative, one threshold holding 2 of 3 videos (2/3, as scikit-learn counts ties);
    # class 2's three are 1st-3rd (1); hit@1: rows 0 and 2; hit@3: all
    assert multi == pytest.approx({"mAP": (1 + 2 / 3 + 1) / 3, "top1": 0.5, "top5": 1.0})
    assert set(Classification(THREE).empty_metrics()) == set(single)
    assert set(MultiLabelClassification(THREE).empty_metrics()) == set(multi)


def test_targets_from_samples():
    assert Classification(THREE).target(Sample(Path("v.mp4"), 2)).item() == 2
    with pytest.raises(DataError, match="v.mp4: has several labels"):
        Classification(THREE).target(Sample(Path("v.mp4"), -1, (0, 2)))
    multi = MultiLabelClassification(THREE)
    assert multi.target(Sample(Path("v.mp4"), -1, (0, 2))).tolist() == [1.0, 0.0, 1.0]
    assert multi.target(Sample(Path("v.mp4"), 1)).tolist() == [0.0, 1.0, 0.0]  # single-label data, explicitly


def test_records_and_predictions():
    single = Classification(THREE)
    record = single.record(torch.tensor([0.1, 0.7, 0.2]), torch.tensor(0))
    assert record == {"label": "red", "prediction": "green", "correct": False,
                      "top5": [["green", 0.7], ["blue", 0.2], ["red", 0.1]]}
    multi = MultiLabelClassification(THREE).record(torch.tensor([0.9, 0.1, 0.8]), torch.tensor([1.0, 0.0, 1.0]))
    assert multi["label"] == ["red", "blue"] and multi["correct"] is True
    prediction = single.prediction(torch.tensor([0.1, 0.7, 0.2]), top=2)
    assert prediction == {"top": [{"class": "green", "index": 1, "score": 0.7}, {"class": "blue", "index": 2, "score": 0.2}]}
    assert single.format_prediction(prediction) == ["  1. green   70.0%", "  2. blue    20.0%"]


def test_the_recipe_and_the_annotations_choose_the_task():
    single = Annotations([Sample(Path("a.mp4"), 0)], THREE)
    multi = Annotations([Sample(Path("a.mp4"), -1, (0, 1))], THREE, multi_label=True)
    assert type(task_for("classification", single)) is Classification
    assert type(task_for("classification", multi)) is MultiLabelClassification  # Charades' CSV decides
    assert type(task_for("multi_label", single)) is MultiLabelClassification
    assert task_for("classification", single).best_metric == "top1" and task_for("multi_label", single).best_metric == "mAP"
    assert {"classification", "multi_label"} <= set(list_tasks())
    with pytest.raises(ConfigError, match=r"'task.name' = 'boxes': expected one of .*classification.*multi_label"):
        task_class("boxes")
