"""IoU, generalized IoU and the box losses against hand-computed values (Rezatofighi et al. 2019)."""

from __future__ import annotations

import pytest
import torch

from vidgrid.tasks.boxes import box_iou, generalized_box_iou, giou_loss, l1_box_loss


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_identical_boxes_have_giou_one():
    a = boxes([0, 0, 2, 2], [3, 1, 7, 9])
    assert generalized_box_iou(a, a).tolist() == pytest.approx([1.0, 1.0])
    assert giou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)


def test_overlapping_squares():
    # intersection 1, union 7, enclosing box (0,0,3,3) of area 9: GIoU = 1/7 - (9-7)/9
    a, b = boxes([0, 0, 2, 2]), boxes([1, 1, 3, 3])
    assert box_iou(a, b).item() == pytest.approx(1 / 7)
    assert generalized_box_iou(a, b).item() == pytest.approx(1 / 7 - 2 / 9)
    assert giou_loss(a, b).item() == pytest.approx(1 - (1 / 7 - 2 / 9))


def test_disjoint_boxes_are_negative_and_ranked_by_distance():
    # (0,0,1,1) and (2,0,3,1): IoU 0, union 2, enclosing 3x1: GIoU = -1/3
    a = boxes([0, 0, 1, 1], [0, 0, 1, 1])
    b = boxes([2, 0, 3, 1], [9, 0, 10, 1])
    g = generalized_box_iou(a, b)
    assert box_iou(a, b).tolist() == [0.0, 0.0]
    assert g[0].item() == pytest.approx(-1 / 3)
    assert g[1].item() == pytest.approx(2 / 10 - 1)  # enclosing 10x1, union 2
    assert g[1] < g[0]


def test_nested_boxes():
    # (1,1,2,2) inside (0,0,4,4): IoU = GIoU = 1/16 (the enclosing box is the outer one)
    a, b = boxes([1, 1, 2, 2]), boxes([0, 0, 4, 4])
    assert box_iou(a, b).item() == pytest.approx(1 / 16)
    assert generalized_box_iou(a, b).item() == pytest.approx(1 / 16)


def test_pairwise_matches_element_wise():
    a = boxes([0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 8])
    b = boxes([1, 1, 3, 3], [0, 0, 4, 4])
    pairwise = generalized_box_iou(a, b, pairwise=True)
    assert pairwise.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert pairwise[i, j].item() == pytest.approx(generalized_box_iou(a[i : i + 1], b[j : j + 1]).item())
    assert pairwise[0, 0].item() == pytest.approx(1 / 7 - 2 / 9)


def test_zero_area_boxes_give_finite_values_and_gradients():
    predicted = boxes([1, 1, 1, 1], [0, 0, 0, 3], [2, 2, 2, 2]).requires_grad_()
    target = boxes([1, 1, 1, 1], [0, 0, 2, 2], [5, 5, 6, 6])
    loss = giou_loss(predicted, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(predicted.grad).all()
    assert torch.isfinite(generalized_box_iou(predicted, target, pairwise=True)).all()


def test_l1_on_normalised_coordinates():
    predicted, target = boxes([0, 0, 10, 10]), boxes([2, 0, 10, 6])
    assert l1_box_loss(predicted, target, 20).item() == pytest.approx((2 + 4) / 4 / 20)


def test_shape_errors():
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        generalized_box_iou(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="equal shapes"):
        generalized_box_iou(torch.zeros(2, 4), torch.zeros(3, 4))
