"""Top-k, mean class accuracy, confusion matrix and mAP against hand-computed values."""

import pytest
import torch

from vidgrid.tasks.metrics import (
    average_precision,
    confusion_matrix,
    mean_average_precision,
    mean_class_accuracy,
    topk_accuracy,
)

SCORES = torch.tensor(
    [
        [0.7, 0.2, 0.1],  # true 0: top-1 hit
        [0.5, 0.3, 0.2],  # true 1: second best
        [0.1, 0.3, 0.6],  # true 2: hit
        [0.2, 0.5, 0.3],  # true 0: third
    ]
)
TARGETS = torch.tensor([0, 1, 2, 0])


def test_topk():
    acc = topk_accuracy(SCORES, TARGETS, ks=(1, 2, 5))
    assert acc == pytest.approx({1: 0.5, 2: 0.75, 5: 1.0})  # k=5 capped at 3 classes


def test_confusion_and_mean_class_accuracy():
    cm = confusion_matrix(SCORES.argmax(1), TARGETS, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 0, 0], [0, 0, 1]]
    # per-class recall: 1/2, 0/1, 1/1 -> mean 0.5; a class that never occurs is left out
    assert mean_class_accuracy(cm) == pytest.approx(0.5)
    cm4 = confusion_matrix(SCORES.argmax(1), TARGETS, 4)
    assert mean_class_accuracy(cm4) == pytest.approx(0.5)


def test_average_precision_by_hand():
    # ranking: pos, neg, pos, neg -> precisions at the positives 1/1 and 2/3 -> AP = 5/6
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    assert average_precision(scores, torch.tensor([True, False, True, False])) == pytest.approx(5 / 6)
    targets = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 0]], dtype=torch.float32)
    both = torch.stack([scores, torch.tensor([0.1, 0.2, 0.3, 0.4])], dim=1)
    # class 1: its positive is ranked 3rd of 4 -> AP 1/3
    assert mean_average_precision(both, targets) == pytest.approx((5 / 6 + 1 / 3) / 2)
    # a class without positives does not count
    with_empty = torch.cat([both, torch.rand(4, 1)], dim=1)
    assert mean_average_precision(with_empty, torch.cat([targets, torch.zeros(4, 1)], dim=1)) == pytest.approx(
        (5 / 6 + 1 / 3) / 2
    )


def test_tied_scores_do_not_depend_on_the_order_of_the_videos():
    tied = torch.tensor([0.9, 0.9, 0.1])
    assert average_precision(tied, torch.tensor([True, False, False])) == pytest.approx(0.5)
    assert average_precision(tied, torch.tensor([False, True, False])) == pytest.approx(0.5)
