"""Sibling heads: one backbone, a classification head and a localisation head (practitioner's notes,
"Mitigate negative transfer in sibling head"; GIoU loss, Rezatofighi et al., CVPR 2019).

**Network** (:class:`SiblingNetwork`): the backbone's features feed its own classifier and a
:class:`BoxHead` that keeps the spatial layout; each head reaches the backbone through a gradient
scale (``task.cls_grad_scale``, ``task.box_grad_scale``; 0 detaches the head). One forward returns
``(B, K + 4)``: the K class logits, then the box ``(x1, y1, x2, y2)`` in crop-normalised coordinates.

**Targets**: per view ``(class, x1, y1, x2, y2, visible, side, frame, wx1, wy1, wx2, wy2)``: the
box of the clip's centre frame as it lies in the clip (:func:`vidgrid.data.boxes.view_box`), divided
by the clip side ``side`` (pixels); ``visible`` 0 for a box that left the crop or a video without
boxes: such a clip has no box loss and no box metrics; then the view's centre frame and crop window
in source pixels, which map a predicted box back onto the video (:meth:`Sibling.prediction_figure`).

**Loss**: ``w_c · CE + w_b · (GIoU loss + L1)`` over the visible boxes, with fixed weights
(``task.cls_weight``, ``task.box_weight``) or learned uncertainty weighting
``Σ_i exp(-s_i) L_i + s_i`` (Kendall, Gal and Cipolla, CVPR 2018, Eq. 7-10, s_i = log σ_i²).

**Metrics** each evaluation: top-1 / top-5 of the mean softmax over views; over every view with a
visible box: mean IoU, mean GIoU, box MAE in pixels of the test crop and accuracy at IoU ≥ 0.5.
Each head has a best checkpoint (``best-top1.pt``, ``best-iou.pt``).

**Per-head early stop** (``task.patience`` > 0): a head whose metric has not improved for
``patience`` evaluations gets the weights of its best evaluation back, is frozen and its loss
stops; the other head trains on. Once both have stopped the backbone is frozen too and the loss is
a constant 0 (the remaining epochs change no weight; BatchNorm statistics still follow the data). The bookkeeping lives in the network's buffers, so a checkpoint
holds it and a resumed run continues it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidgrid.config import TaskConfig
from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.boxes import ClipView, box_at, check_box, view_box
from vidgrid.data.decode import decode_frames
from vidgrid.errors import ConfigError
from vidgrid.tasks.base import Task, register_task
from vidgrid.tasks.boxes import box_iou, generalized_box_iou, giou_loss, l1_box_loss
from vidgrid.tasks.classification import smooth_one_hot, soft_target_cross_entropy
from vidgrid.tasks.metrics import topk_accuracy

HEADS = ("cls", "box")
HEAD_METRICS = {"cls": "top1", "box": "iou"}
"""The metric that picks each head's best checkpoint and drives its early stop."""
TARGET_WIDTH = 12
"""Target columns: class, x1, y1, x2, y2, visible, side, then where the view was cut: its centre
frame and its window (x1, y1, x2, y2) in source pixels (to draw a prediction on the video)."""


class GradScale(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_grad(features: torch.Tensor | Sequence[torch.Tensor], scale: float) -> Any:
    """The features, with the gradient into the backbone times ``scale`` (0: detached)."""
    if isinstance(features, torch.Tensor):
        return features.detach() if scale == 0 else features if scale == 1 else GradScale.apply(features, scale)
    return [scale_grad(f, scale) for f in features]


class BoxHead(nn.Module):
    """One box per clip from the feature map(s), keeping the spatial layout.

    Every pathway is averaged over time and the maps concatenated (``(B, ΣC, h, w)``); a per-location
    (1×1) block predicts at each location ``p`` a weight and the distances ``(l, t, r, b)`` > 0 from ``p`` to
    the box's sides (FCOS-style); the box is the softmax-weighted mean of the locations' boxes, so
    ``x2 - x1 = Σ w_p (l_p + r_p) > 0`` always. Adaptive to every h × w (every multigrid shape).
    """

    def __init__(self, in_channels: int, hidden: int = 128) -> None:
        super().__init__()
        # per-location layers as Linear on (B, h·w, C) tokens (1×1 convolutions; 2-D weights also
        # keep the model movable to channels_last_3d)
        self.body = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True))
        self.weight = nn.Linear(hidden, 1)
        self.sides = nn.Linear(hidden, 4)
        nn.init.zeros_(self.weight.weight)
        nn.init.zeros_(self.weight.bias)
        nn.init.normal_(self.sides.weight, std=0.01)
        nn.init.constant_(self.sides.bias, -1.0)

    def forward(self, features: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        maps = [features] if isinstance(features, torch.Tensor) else list(features)
        if any(m.ndim != 5 for m in maps):
            raise ConfigError("the sibling task's box head needs (B, C, T, H, W) feature maps (MViT's tokens have none)")
        x = torch.cat([m.mean(dim=2) for m in maps], dim=1).float()  # (B, C, T, h, w) -> (B, ΣC, h, w)
        b, _, h, w = x.shape
        z = self.body(x.flatten(2).transpose(1, 2))  # (B, ΣC, h, w) -> (B, h·w, hidden)
        weights = torch.softmax(self.weight(z).squeeze(2), dim=1)  # (B, h·w)
        sides = (F.softplus(self.sides(z)) + 1e-4).transpose(1, 2)  # (B, 4, h·w): l, t, r, b in crop fractions
        ys, xs = torch.meshgrid((torch.arange(h, device=x.device) + 0.5) / h, (torch.arange(w, device=x.device) + 0.5) / w,
                                indexing="ij")
        cx, cy = xs.flatten(), ys.flatten()  # (h·w,) cell centres in [0, 1]
        boxes = torch.stack([cx - sides[:, 0], cy - sides[:, 1], cx + sides[:, 2], cy + sides[:, 3]], dim=1)  # (B, 4, h·w)
        return (boxes * weights[:, None]).sum(dim=2)  # (B, 4)


class SiblingNetwork(nn.Module):
    """Backbone + ``head.cls`` (the backbone's classifier) + ``head.box``; returns ``(B, K + 4)``."""

    def __init__(self, model: nn.Module, *, grad_scales: tuple[float, float], uncertainty: bool) -> None:
        super().__init__()
        classifier = model.head
        model.head = nn.Identity()  # the classifier moves under this module's ``head`` (head LR group)
        self.backbone = model
        self.head = nn.ModuleDict({"cls": classifier, "box": BoxHead(sum(model.feature_channels))})
        self.grad_scales = grad_scales
        self.log_vars = nn.Parameter(torch.zeros(2)) if uncertainty else None
        self.register_buffer("frozen", torch.zeros(2, dtype=torch.bool))
        self.register_buffer("stale", torch.zeros(2, dtype=torch.int64))
        for name in HEADS:  # each head's weights at its best evaluation, for the early stop
            for key, value in self.head[name].state_dict().items():
                self.register_buffer(f"best_{name}_{key.replace('.', '_')}", value.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x)
        logits = self.head["cls"](scale_grad(features, self.grad_scales[0]))
        boxes = self.head["box"](scale_grad(features, self.grad_scales[1]))
        return torch.cat([logits.float(), boxes], dim=1)  # (B, K + 4)

    def no_weight_decay(self) -> set[str]:
        inner = {f"backbone.{n}" for n in self.backbone.no_weight_decay()} if hasattr(self.backbone, "no_weight_decay") else set()
        return inner | ({"log_vars"} if self.log_vars is not None else set())

    def keep_best(self, k: int) -> None:
        """Head ``k``'s weights are its best so far."""
        for key, value in self.head[HEADS[k]].state_dict().items():
            getattr(self, f"best_{HEADS[k]}_{key.replace('.', '_')}").copy_(value)
        self.stale[k] = 0

    def freeze(self, k: int) -> None:
        """Give head ``k`` its best weights back and stop training it."""
        head = self.head[HEADS[k]]
        head.load_state_dict({key: getattr(self, f"best_{HEADS[k]}_{key.replace('.', '_')}") for key in head.state_dict()})
        self.frozen[k] = True
        self.apply_frozen()

    def apply_frozen(self) -> None:
        """``requires_grad`` off for the frozen heads, and for the backbone once every head is frozen
        (after a freeze or a resume)."""
        for k, name in enumerate(HEADS):
            for p in self.head[name].parameters():
                p.requires_grad_(not bool(self.frozen[k]))
        for p in self.backbone.parameters():
            p.requires_grad_(not bool(self.frozen.all()))

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.apply_frozen()


@register_task
class Sibling(Task):
    """Classification + localisation of the main object on one backbone."""

    name = "sibling"
    best_metric = "top1"
    best_metrics = ("top1", "iou")
    mixable = False
    spatial_targets = True

    def __init__(self, classes: Sequence[str], settings: TaskConfig | None = None) -> None:
        super().__init__(classes)
        self.settings = settings or TaskConfig(name=self.name)
        self.network: SiblingNetwork | None = None

    @classmethod
    def from_config(cls, classes: Sequence[str], settings: TaskConfig | None) -> Sibling:
        return cls(classes, settings)

    @property
    def freezes_parameters(self) -> bool:
        return self.settings.patience > 0

    # model
    def attach(self, model: nn.Module) -> nn.Module:
        s = self.settings
        self.network = SiblingNetwork(model, grad_scales=(s.cls_grad_scale, s.box_grad_scale),
                                      uncertainty=s.loss_weighting == "uncertainty")
        return self.network

    # data
    def target(self, sample: Sample) -> torch.Tensor:
        """The target of one view of the first frame's top-left pixel (the datasets call :meth:`clip_target`)."""
        return self.clip_target(sample, [ClipView(0.0, (0.0, 0.0, 1.0, 1.0), (1, 1))])

    def clip_target(self, sample: Sample, views: Sequence[ClipView]) -> torch.Tensor:
        """float (V, 12): class, the box in crop fractions, visible, clip side in pixels, centre frame, window."""
        rows = []
        for view in views:
            side, where = float(view.size[1]), [view.frame, *view.window]
            if sample.boxes:
                source = check_box(box_at(sample.boxes, view.frame), f"{sample.path}: frame {view.frame:g}", view.frame_size)
                (x1, y1, x2, y2), visible = view_box(source, view)
                box = [x1 / side, y1 / view.size[0], x2 / side, y2 / view.size[0], float(visible)]
            else:
                box = [0.0, 0.0, 0.0, 0.0, 0.0]
            rows.append([sample.label, *box, side, *where])
        return torch.tensor(rows, dtype=torch.float32)

    def check_training_data(self, annotations: Annotations, *, source: str) -> None:
        if not any(s.boxes for s in annotations.samples):
            raise ConfigError(f"'data.train_list' = {source!r}: no video has a box, which the {self.name} task learns "
                              "(give data.boxes=TRACKS.csv or 'x1 y1 x2 y2' on the list lines)")

    # training
    def soft_targets(self, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        """(B, 1, 7) -> (B, K + 6): smoothed one-hot classes, then box, visible, side."""
        t = targets[:, 0]
        return torch.cat([smooth_one_hot(t[:, 0].long(), self.num_outputs, smoothing), t[:, 1:]], dim=1)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        k = self.num_outputs
        cls_loss = soft_target_cross_entropy(outputs[:, :k], targets[:, :k])
        visible = targets[:, k + 4] > 0
        box_loss = outputs[:, k:].sum() * 0.0  # no visible box: 0, still in the graph
        if visible.any():
            predicted, truth = outputs[visible, k:], targets[visible, k : k + 4]
            box_loss = giou_loss(predicted, truth) + l1_box_loss(predicted, truth)
        return self.combine(cls_loss, box_loss)

    def combine(self, cls_loss: torch.Tensor, box_loss: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the heads' losses that are still training (every head stopped: a 0 that
        trains nothing)."""
        net, s = self.network, self.settings
        if net is not None and bool(net.frozen.all()):
            return cls_loss.new_zeros((), requires_grad=True)
        total = cls_loss.new_zeros(())
        for k, loss in enumerate((cls_loss, box_loss)):
            if net is not None and bool(net.frozen[k]):
                continue
            if net is not None and net.log_vars is not None:
                total = total + torch.exp(-net.log_vars[k]) * loss + net.log_vars[k]
            else:
                total = total + (s.cls_weight, s.box_weight)[k] * loss
        return total

    def after_validation(self, model: nn.Module, improved: Sequence[str]) -> list[str]:
        """Keep each improved head's weights; freeze a head ``task.patience`` evaluations without improving."""
        messages = []
        for k, name in enumerate(HEADS):
            if bool(model.frozen[k]):
                continue
            if HEAD_METRICS[name] in improved:
                model.keep_best(k)
                continue
            model.stale[k] += 1
            if self.settings.patience and int(model.stale[k]) >= self.settings.patience:
                model.freeze(k)
                messages.append(f"{name} head: {HEAD_METRICS[name]} did not improve for {self.settings.patience} "
                                f"evaluations; back to its best weights and frozen")
                if bool(model.frozen.all()):
                    messages.append("every head has stopped: the backbone is frozen too, the remaining epochs train nothing")
        return messages

    # evaluation
    def aggregate_views(self, outputs: torch.Tensor) -> torch.Tensor:
        """(B, V, K + 4) -> (B, K + 4V): mean softmax over views, then every view's box."""
        k = self.num_outputs
        probs = torch.softmax(outputs[..., :k].float(), dim=-1).mean(dim=1)
        return torch.cat([probs, outputs[..., k:].flatten(1)], dim=1)

    def split(self, scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Class scores (N, K), predicted (M, 4) and true (M, 4) boxes of the visible views, their sides (M,)."""
        k, n = self.num_outputs, scores.shape[0]
        targets = targets.float().reshape(n, -1, TARGET_WIDTH)
        predicted = scores[:, k:].reshape(n, -1, 4)
        visible = targets[..., 5] > 0
        return scores[:, :k], predicted[visible], targets[..., 1:5][visible], targets[..., 6][visible]

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        scores, targets = scores.float().cpu(), targets.float().cpu()
        probs, predicted, truth, side = self.split(scores, targets)
        acc = topk_accuracy(probs, targets.reshape(scores.shape[0], -1, TARGET_WIDTH)[:, 0, 0].long())
        out = {"top1": acc[1], "top5": acc[5], "iou": 0.0, "giou": 0.0, "box_mae": 0.0, "acc_iou50": 0.0}
        if len(truth):
            iou = box_iou(predicted, truth)
            out.update(iou=float(iou.mean()), giou=float(generalized_box_iou(predicted, truth).mean()),
                       box_mae=float(((predicted - truth).abs() * side[:, None]).mean()), acc_iou50=float((iou >= 0.5).float().mean()))
        return out

    def empty_metrics(self) -> dict[str, float]:
        return {"top1": 0.0, "top5": 0.0, "iou": 0.0, "giou": 0.0, "box_mae": 0.0, "acc_iou50": 0.0}

    def record(self, scores: torch.Tensor, target: torch.Tensor, *, top: int = 5) -> dict[str, Any]:
        """``label``, ``prediction``, ``correct``, ``boxes`` (each view's box in crop pixels) and their ``iou``."""
        probs, predicted, truth, side = self.split(scores[None], target[None])
        best = int(probs[0].argmax())
        label = self.classes[int(target.reshape(-1, TARGET_WIDTH)[0, 0])]
        boxes = scores[self.num_outputs :].reshape(-1, 4) * target.reshape(-1, TARGET_WIDTH)[:, 6:7]
        iou = float(box_iou(predicted, truth).mean()) if len(truth) else None
        return {"label": label, "prediction": self.classes[best], "correct": self.classes[best] == label,
                "boxes": [[round(v, 2) for v in b] for b in boxes.tolist()], "iou": iou}

    def prediction(self, scores: torch.Tensor, *, top: int) -> dict[str, Any]:
        """The ranked classes and the centre view's box in crop fractions."""
        k = self.num_outputs
        ranked = scores[:k].topk(min(top, k))
        views = scores[k:].reshape(-1, 4)
        return {"top": [{"class": self.classes[c], "index": c, "score": round(float(p), 5)}
                        for p, c in zip(ranked.values.tolist(), ranked.indices.tolist())],
                "box": [round(v, 4) for v in views[len(views) // 2].tolist()]}

    def format_prediction(self, prediction: dict[str, Any]) -> list[str]:
        width = max(len(t["class"]) for t in prediction["top"])
        rows = [f"  {k}. {t['class']:<{width}}  {100 * t['score']:5.1f}%" for k, t in enumerate(prediction["top"], 1)]
        return rows + ["  box (x1, y1, x2, y2) in crop fractions: " + ", ".join(f"{v:.3f}" for v in prediction["box"])]

    def prediction_figure(self, path: Path, video: Path, scores: torch.Tensor, target: torch.Tensor) -> Path:
        """The centre view's centre frame with its predicted box (in source pixels) and class, as a PNG."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        k, rows = self.num_outputs, target.reshape(-1, TARGET_WIDTH)
        view = len(rows) // 2
        frame, *window = rows[view, 7:].tolist()
        box = source_box(scores[k:].reshape(-1, 4)[view].tolist(), window)
        image = decode_frames(video, [round(frame)], threads=1)[0].numpy()  # (H, W, 3)
        fig = Figure(figsize=(6, 6 * image.shape[0] / image.shape[1]), layout="constrained")
        ax = fig.subplots()
        ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0), interpolation="nearest")
        ax.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, color="yellow", linewidth=2))
        best = int(scores[:k].argmax())
        ax.set_title(f"{self.classes[best]} {100 * float(scores[best]):.1f}% · frame {round(frame)}", fontsize=10)
        ax.set_axis_off()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        return path

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``top-1 93.8% · IoU 0.812 · GIoU 0.790 · box MAE 2.1 px · IoU≥0.5 95.0%``."""
        return (f"top-1 {100 * metrics['top1']:.1f}% · IoU {metrics['iou']:.3f} · GIoU {metrics['giou']:.3f} · "
                f"box MAE {metrics['box_mae']:.1f} px · IoU≥0.5 {100 * metrics['acc_iou50']:.1f}%")


def source_box(box: Sequence[float], window: Sequence[float]) -> list[float]:
    """A box in fractions of an (unflipped) test view -> source pixels, given the view's window ``(x1, y1, x2, y2)``."""
    wx1, wy1, wx2, wy2 = window
    return [wx1 + box[0] * (wx2 - wx1), wy1 + box[1] * (wy2 - wy1), wx1 + box[2] * (wx2 - wx1), wy1 + box[3] * (wy2 - wy1)]
