"""Spatio-temporal action detection on keyframes (AVA; X3D supplement §A.1, SlowFast paper §5): a
Faster R-CNN-like head on a video backbone with precomputed person boxes.

**Network** (:class:`DetectionNetwork`): the backbone's last feature map (every pathway of SlowFast,
each averaged over time and concatenated; MViT's tokens reshaped to their map), temporal average
pool, RoIAlign 7×7 per box (:func:`vidgrid.tasks.roi_align.roi_align`, spatial scale = feature size /
input size), spatial max pool, the backbone's dropout, a per-class linear layer (sigmoid, binary
cross-entropy). ``forward(clips, boxes)`` takes the targets' leading columns and returns per clip
``(M, 5 + K)`` rows: the box's kind and corners as given, then its K logits (0 for rows that are not
classified).

**Targets**: per view ``(M, 8 + K)`` rows padded to :data:`MAX_BOXES`: ``kind`` (1: a box to
classify, 2: an annotated box for evaluation only, 0: padding), the box ``(x1, y1, x2, y2)`` in
fractions of the clip after its spatial transforms (:func:`vidgrid.data.boxes.view_box`), the
keyframe time in seconds, the clip's height and width in pixels (a batch of whole-frame test views
is zero-padded to its largest frame, so fractions of the padded input would be wrong), the K
multi-hot classes. A training box that leaves the crop is dropped;
boxes beyond :data:`MAX_BOXES` per keyframe are dropped (annotated boxes last).

**Metrics**: frame-level AP at IoU 0.5 per class and its mean (:mod:`vidgrid.tasks.frame_ap`);
``summary.json`` holds ``map`` and ``ap`` (class name -> AP); ``ap.png`` is a per-class bar chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidgrid.data.annotations import Sample
from vidgrid.data.boxes import ClipView, view_box
from vidgrid.data.decode import decode_frames, probe_video
from vidgrid.errors import ConfigError
from vidgrid.tasks.base import Task, register_task
from vidgrid.tasks.frame_ap import FrameBoxes, frame_ap
from vidgrid.tasks.roi_align import roi_align

MAX_BOXES = 64
"""Boxes per keyframe a target holds (rows to classify, then annotated rows)."""
ROI_RESOLUTION = 7
"""RoIAlign output size (X3D supplement §A.1, as in Mask R-CNN)."""
ROI, TRUTH = 1, 2
"""Row kinds of a target: a box to classify, an annotated box for evaluation."""
LEAD = 8
"""Target columns before the classes: kind, x1, y1, x2, y2, time, clip height, clip width."""


def token_map(tokens: torch.Tensor, input_thw: tuple[int, int, int]) -> torch.Tensor:
    """MViT's (B, 1 + N, C) tokens (class token first) -> (B, C, t, h, w), the grid found from the
    input size: the N = t·h·w with t = T/s_t, h = ⌈H/s⌉, w = ⌈W/s⌉ for the largest stride s that fits."""
    b, n, c = tokens.shape[0], tokens.shape[1] - 1, tokens.shape[2]
    t_in, h_in, w_in = input_thw
    for stride in (64, 32, 16, 8, 4):
        for t_stride in (2, 1, 4):
            t, h, w = max(t_in // t_stride, 1), math.ceil(h_in / stride), math.ceil(w_in / stride)
            if t * h * w == n:
                return tokens[:, 1:].transpose(1, 2).reshape(b, c, t, h, w)  # (B, N, C) -> (B, C, t, h, w)
    raise ConfigError(f"cannot lay {n} tokens of a {t_in}x{h_in}x{w_in} clip out as a feature map")


def pooled_map(features: torch.Tensor | Sequence[torch.Tensor], input_thw: tuple[int, int, int]) -> torch.Tensor:
    """The backbone's last features -> (B, ΣC, h, w): every pathway averaged over time, concatenated."""
    maps = [features] if isinstance(features, torch.Tensor) else list(features)
    maps = [token_map(m, input_thw) if m.ndim == 3 else m for m in maps]
    return torch.cat([m.mean(dim=2) for m in maps], dim=1)  # (B, C, T, h, w) -> (B, ΣC, h, w)


class RoIHead(nn.Module):
    """RoIAlign → spatial max pool → dropout → per-class linear (logits; the sigmoid is in the loss)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: nn.Module) -> None:
        super().__init__()
        self.dropout = dropout
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, pooled: torch.Tensor, rois: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
        """(B, C, h, w) map, (N, 5) rois ``(b, x1, y1, x2, y2)`` in input pixels -> (N, K) logits."""
        scale = pooled.shape[-1] / input_hw[1]
        regions = roi_align(pooled.float(), rois, output_size=ROI_RESOLUTION, spatial_scale=scale)  # (N, C, 7, 7)
        return self.fc(self.dropout(regions.amax(dim=(2, 3))))  # (N, C, 7, 7) -> (N, C) -> (N, K)


class DetectionNetwork(nn.Module):
    """Backbone + :class:`RoIHead` under ``head``; ``forward(clips, boxes)`` with ``boxes`` (B, M, 8):
    the targets' leading columns."""

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        super().__init__()
        dropout = getattr(model.head, "dropout", nn.Identity())
        model.head = nn.Identity()
        self.backbone = model
        self.head = RoIHead(sum(model.feature_channels), num_classes, dropout)

    def forward(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        t, h, w = x.shape[2:]
        pooled = pooled_map(self.backbone.forward_features(x), (t, h, w))
        selected = boxes[..., 0] == ROI  # (B, M)
        batch_index, _ = torch.nonzero(selected, as_tuple=True)
        sizes = boxes[..., [7, 6, 7, 6]][selected].float()  # the clip's (w, h, w, h) before padding
        corners = boxes[..., 1:5][selected].float() * sizes
        rois = torch.cat([batch_index[:, None].float(), corners], dim=1)  # (N, 5) in input pixels
        logits = self.head(pooled, rois, (h, w)).float()  # float32 under autocast too: the box columns
        # beside the logits must keep their coordinates (bf16 holds 8 significant bits)
        out = torch.zeros(*boxes.shape[:2], self.head.fc.out_features, device=x.device)
        out[selected] = logits
        return torch.cat([boxes[..., :5].float(), out], dim=-1)  # (B, M, 5 + K)

    def no_weight_decay(self) -> set[str]:
        inner = self.backbone.no_weight_decay() if hasattr(self.backbone, "no_weight_decay") else set()
        return {f"backbone.{n}" for n in inner}


@register_task
class Detection(Task):
    """Multi-label action classes of person boxes at keyframes."""

    name = "detection"
    best_metric = "map"
    sample_unit = "keyframes"
    mixable = False
    spatial_targets = True
    box_inputs = True

    # model
    def attach(self, model: nn.Module) -> nn.Module:
        return DetectionNetwork(model, self.num_outputs)

    def forward(self, model: nn.Module, clips: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The network on the clips and their boxes (the targets' leading columns)."""
        return model(clips, targets.reshape(clips.shape[0], -1, targets.shape[-1])[..., :LEAD])

    # data
    def target(self, sample: Sample) -> torch.Tensor:
        return self.clip_target(sample, [ClipView(0.0, (0.0, 0.0, 1.0, 1.0), (1, 1), frame_size=(1, 1))])

    def clip_target(self, sample: Sample, views: Sequence[ClipView]) -> torch.Tensor:
        """float (V, MAX_BOXES, 8 + K): each view's boxes to classify, then the annotated boxes."""
        out = torch.zeros(len(views), MAX_BOXES, LEAD + self.num_outputs)
        keyframe = sample.keyframe
        if keyframe is None:
            raise ConfigError(f"{sample.path}: the detection task needs keyframe annotations ('data.format' = 'ava')")
        rows = [(ROI, box, labels) for box, labels in keyframe.rois] + [(TRUTH, box, labels) for box, labels in keyframe.truth]
        for v, view in enumerate(views):
            fh, fw = view.frame_size or (1, 1)
            out[v, :, 5] = keyframe.time_s
            kept = 0
            for kind, (x1, y1, x2, y2), labels in rows:
                (a, b, c, d), visible = view_box((x1 * fw, y1 * fh, x2 * fw, y2 * fh), view)
                if not visible or kept == MAX_BOXES:
                    continue
                out[v, kept, :LEAD] = torch.tensor([kind, a / view.size[1], b / view.size[0], c / view.size[1],
                                                    d / view.size[0], keyframe.time_s, *view.size])
                out[v, kept, LEAD + torch.tensor(labels, dtype=torch.long)] = 1.0
                kept += 1
        return out

    # training
    def soft_targets(self, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        """Per-class label smoothing ``y·(1-ε) + ε/2`` of the class columns."""
        smoothed = targets.float().clone()
        smoothed[..., LEAD:] = smoothed[..., LEAD:] * (1.0 - smoothing) + 0.5 * smoothing
        return smoothed

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean per-class binary cross-entropy over the boxes classified (X3D supplement §A.1: sigmoid)."""
        targets = targets.reshape(outputs.shape[0], -1, targets.shape[-1])
        selected = targets[..., 0] == ROI
        logits = outputs[..., 5:].float()
        if not selected.any():
            return logits.sum() * 0.0
        return F.binary_cross_entropy_with_logits(logits[selected], targets[..., LEAD:][selected].float())

    # evaluation
    def aggregate_views(self, outputs: torch.Tensor) -> torch.Tensor:
        """(B, V, M, 5 + K) -> (B, M, 5 + K): the boxes and the mean sigmoid over the views."""
        probs = torch.sigmoid(outputs[..., 5:].float()).mean(dim=1)
        return torch.cat([outputs[:, 0, :, :5].float(), probs], dim=-1)

    def frames(self, scores: torch.Tensor, targets: torch.Tensor) -> list[FrameBoxes]:
        """Each keyframe's detections and annotated boxes."""
        targets = targets.float().reshape(scores.shape[0], -1, MAX_BOXES, targets.shape[-1])[:, 0]
        frames = []
        for row, target in zip(scores.float(), targets):
            detected, truth = row[:, 0] == ROI, target[:, 0] == TRUTH
            frames.append(FrameBoxes(row[detected, 1:5], row[detected, 5:], target[truth, 1:5], target[truth, LEAD:] > 0.5))
        return frames

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """``map`` over the classes with annotated boxes, and ``ap/<class>`` for each of them."""
        ap = frame_ap(self.frames(scores.cpu(), targets.cpu()), self.num_outputs)
        return {"map": sum(ap.values()) / len(ap) if ap else 0.0, **{f"ap/{self.classes[k]}": v for k, v in ap.items()}}

    def empty_metrics(self) -> dict[str, float]:
        return {"map": 0.0}

    def summary_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """``ap/<class>`` keys gathered into ``ap``: class name -> AP."""
        plain = {k: v for k, v in metrics.items() if not k.startswith("ap/")}
        return {**plain, "ap": {k[3:]: v for k, v in metrics.items() if k.startswith("ap/")}}

    def ranked(self, probs: torch.Tensor, top: int) -> list[dict[str, Any]]:
        best = probs.topk(min(top, len(probs)))
        return [{"class": self.classes[c], "score": round(float(p), 5)} for p, c in zip(best.values.tolist(), best.indices.tolist())]

    def record(self, scores: torch.Tensor, target: torch.Tensor, *, top: int = 5) -> dict[str, Any]:
        """``time``, the classified ``boxes`` with their ``top`` classes, and the annotated ``truth``."""
        frame = self.frames(scores[None], target[None])[0]
        time = float(target.reshape(-1, target.shape[-1])[0, 5])
        return {"time": time, **self.prediction(scores, top=top),
                "truth": [{"box": [round(v, 4) for v in box.tolist()], "classes": [self.classes[k] for k in torch.nonzero(labels).flatten().tolist()]}
                          for box, labels in zip(frame.truth, frame.truth_labels)]}

    def prediction(self, scores: torch.Tensor, *, top: int) -> dict[str, Any]:
        """Each classified box (fractions of the frame) with its ``top`` classes."""
        rows = scores[scores[:, 0] == ROI]
        return {"boxes": [{"box": [round(v, 4) for v in row[1:5].tolist()], "top": self.ranked(row[5:], top)} for row in rows]}

    def format_prediction(self, prediction: dict[str, Any]) -> list[str]:
        lines = []
        for k, box in enumerate(prediction["boxes"], 1):
            corners = ", ".join(f"{v:.3f}" for v in box["box"])
            actions = ", ".join(f"{t['class']} {100 * t['score']:.1f}%" for t in box["top"])
            lines.append(f"  box {k} ({corners}): {actions}")
        return lines or ["  no boxes"]

    def prediction_figure(self, path: Path, video: Path, scores: torch.Tensor, target: torch.Tensor) -> Path:
        """The keyframe with every box and its best classes drawn, as a PNG."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        time = float(target.reshape(-1, target.shape[-1])[0, 5])
        info = probe_video(video)
        image = decode_frames(video, [min(round(time * info.fps), info.num_frames - 1)], threads=1)[0].numpy()
        h, w = image.shape[:2]
        fig = Figure(figsize=(6, 6 * h / w), layout="constrained")
        ax = fig.subplots()
        ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest")
        for box in self.prediction(scores, top=2)["boxes"]:
            x1, y1, x2, y2 = box["box"][0] * w, box["box"][1] * h, box["box"][2] * w, box["box"][3] * h
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="yellow", linewidth=2))
            ax.text(x1, y1, "\n".join(f"{t['class']} {100 * t['score']:.0f}%" for t in box["top"]), color="black",
                    fontsize=7, va="top", bbox={"facecolor": "yellow", "alpha": 0.7, "pad": 1})
        ax.set_title(f"{video.name} · {time:g} s", fontsize=10)
        ax.set_axis_off()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return path

    def write_plots(self, out_dir: Path, scores: torch.Tensor, targets: torch.Tensor) -> list[Path]:
        """``ap.png``: AP at IoU 0.5 per class with annotated boxes, and the mean."""
        from matplotlib.figure import Figure

        ap = frame_ap(self.frames(scores.cpu(), targets.cpu()), self.num_outputs)
        names, values = [self.classes[k] for k in ap], list(ap.values())
        fig = Figure(figsize=(max(4.0, 0.35 * len(names) + 1.5), 4), layout="constrained")
        ax = fig.subplots()
        ax.bar(range(len(names)), values, color="tab:blue")
        if values:
            ax.axhline(sum(values) / len(values), color="tab:red", linestyle="--", label=f"mAP {sum(values) / len(values):.3f}")
            ax.legend(loc="lower right")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("frame AP @ IoU 0.5")
        path = out_dir / "ap.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return [path]

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``frame-mAP@0.5 81.2% over 5 classes``."""
        classes = sum(1 for k in metrics if k.startswith("ap/"))
        return f"frame-mAP@0.5 {100 * metrics['map']:.1f}% over {classes} classes"
