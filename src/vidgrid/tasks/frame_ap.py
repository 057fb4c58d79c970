"""Frame-level average precision of spatio-temporal action detection (the AVA protocol: Gu et al.,
CVPR 2018, §5; Pascal VOC 2010+ all-point interpolated AP, Everingham et al., IJCV 2010, §4.2).

Per class, over every keyframe: the detections (a box and its score for the class) are sorted by
score, best first, and matched greedily: a detection is a true positive when the ground-truth box of
that class in its keyframe with the highest IoU overlaps it by IoU >= 0.5 and has not been matched
before; otherwise (a miss, or a duplicate of a matched box) a false positive. AP is the area under
the precision/recall curve whose precision is made monotone (each precision replaced by the highest
precision at any higher recall). A class without ground truth has no AP (it is left out of the mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vidgrid.tasks.boxes import box_iou

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class FrameBoxes:
    """One keyframe: detected boxes with per-class scores, and the annotated boxes with their classes."""

    boxes: torch.Tensor
    """float (D, 4) ``(x1, y1, x2, y2)``."""
    scores: torch.Tensor
    """float (D, K) per-class scores."""
    truth: torch.Tensor
    """float (G, 4)."""
    truth_labels: torch.Tensor
    """bool (G, K) multi-hot classes."""


def voc_ap(tp: Sequence[bool], num_truth: int) -> float:
    """All-point interpolated AP of detections in score order (True = true positive) against ``num_truth`` boxes."""
    hits = torch.tensor([float(t) for t in tp], dtype=torch.float64)
    if num_truth == 0:
        raise ValueError("AP needs at least one ground-truth box")
    if len(hits) == 0:
        return 0.0
    cum_tp = hits.cumsum(0)
    recall = cum_tp / num_truth
    precision = cum_tp / torch.arange(1, len(hits) + 1, dtype=torch.float64)
    # monotone precision: the best precision at this recall or any higher one
    precision = precision.flip(0).cummax(0).values.flip(0)
    previous = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
    return float(((recall - previous) * precision).sum())


def class_matches(frames: Sequence[FrameBoxes], k: int) -> tuple[list[bool], int]:
    """Class ``k``: true/false positive of every detection in score order, and the number of ground-truth boxes."""
    ranked = []  # (score, frame, detection)
    for f, frame in enumerate(frames):
        ranked += [(float(s), f, d) for d, s in enumerate(frame.scores[:, k].tolist())]
    ranked.sort(key=lambda r: -r[0])
    truth = [frame.truth[frame.truth_labels[:, k]] for frame in frames]
    # eps 0: an IoU of exactly 0.5 stays a match; two empty boxes (0 / 0) overlap by 0
    iou = [box_iou(frame.boxes.float(), t.float(), pairwise=True, eps=0.0).nan_to_num(0.0) for frame, t in zip(frames, truth)]
    matched = [torch.zeros(len(t), dtype=torch.bool) for t in truth]
    tp = []
    for _, f, d in ranked:
        if len(truth[f]) == 0:
            tp.append(False)
            continue
        best, g = iou[f][d].max(dim=0)
        hit = bool(best >= IOU_THRESHOLD) and not bool(matched[f][g])
        if hit:
            matched[f][g] = True
        tp.append(hit)
    return tp, sum(len(t) for t in truth)


def frame_ap(frames: Sequence[FrameBoxes], num_classes: int) -> dict[int, float]:
    """Class index -> AP for the classes with at least one ground-truth box."""
    result = {}
    for k in range(num_classes):
        tp, num_truth = class_matches(frames, k)
        if num_truth:
            result[k] = voc_ap(tp, num_truth)
    return result
