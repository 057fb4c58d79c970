"""Frame-level AP@0.5 (AVA protocol, VOC all-point interpolation) on hand-built cases."""

from __future__ import annotations

import pytest
import torch

from vidgrid.tasks.boxes import box_iou
from vidgrid.tasks.frame_ap import FrameBoxes, frame_ap, voc_ap

A = [0.0, 0.0, 0.4, 0.4]
B = [0.5, 0.5, 0.9, 0.9]
NEAR_A = [0.0, 0.0, 0.4, 0.3]  # IoU 0.75 with A
OFF_A = [0.2, 0.2, 0.6, 0.6]  # IoU 1/7 with A


def frame(boxes, scores, truth, labels, k=1):
    return FrameBoxes(torch.tensor(boxes).reshape(-1, 4), torch.tensor(scores, dtype=torch.float32).reshape(-1, k),
                      torch.tensor(truth).reshape(-1, 4), torch.tensor(labels, dtype=torch.bool).reshape(-1, k))


def test_iou():
    iou = box_iou(torch.tensor([NEAR_A, OFF_A]), torch.tensor([A]), pairwise=True, eps=0.0)
    assert iou.flatten().tolist() == pytest.approx([0.75, 0.04 / 0.28])


def test_voc_all_point_interpolation():
    # TP, FP, TP against 2 truths: recall 0.5 at precision 1, recall 1 at precision 2/3 -> 0.5 + 0.5·2/3
    assert voc_ap([True, False, True], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # FP first: precision 1/2 at recall 1 (interpolated back over recall 0..1)
    assert voc_ap([False, True], 1) == pytest.approx(0.5)
    assert voc_ap([], 3) == 0.0


def test_perfect_detections():
    frames = [frame([A, B], [[0.9, 0.1], [0.2, 0.8]], [A, B], [[1, 0], [0, 1]], k=2)]
    assert frame_ap(frames, 2) == {0: pytest.approx(1.0), 1: pytest.approx(1.0)}


def test_a_duplicate_is_a_false_positive():
    # class 0: NEAR_A (0.9) matches A; A itself (0.8) duplicates it -> FP; then the truth of frame 2 (0.7) -> TP
    frames = [frame([NEAR_A, A], [[0.9], [0.8]], [A], [[1]]), frame([B], [[0.7]], [B], [[1]])]
    assert frame_ap(frames, 1)[0] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_a_miss_and_a_box_below_iou_half():
    # OFF_A overlaps A by 1/7: FP at the top score; A's second frame is never detected (recall ≤ 1/2)
    frames = [frame([OFF_A, A], [[0.9], [0.6]], [A], [[1]]), frame([], [], [A], [[1]])]
    # ranking: FP (0.9), TP (0.6): precision 1/2 at recall 1/2 -> AP 0.25
    assert frame_ap(frames, 1)[0] == pytest.approx(0.25)


def test_detections_are_matched_within_their_frame_and_class():
    # the box in frame 1 lies exactly on frame 2's truth, but frame 1 has none of class 0: FP
    frames = [frame([A], [[0.9]], [], []), frame([A], [[0.5]], [A], [[1]])]
    assert frame_ap(frames, 1)[0] == pytest.approx(0.5)
    # class 1 of the same truth box is not class 0's
    frames = [frame([A], [[0.9, 0.1]], [A], [[0, 1]], k=2)]
    assert frame_ap(frames, 2) == {1: pytest.approx(1.0)}


def test_a_class_without_truth_has_no_ap():
    frames = [frame([A], [[0.9, 0.8]], [A], [[1, 0]], k=2)]
    assert frame_ap(frames, 2) == {0: pytest.approx(1.0)}
