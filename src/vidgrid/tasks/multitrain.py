"""Multi-dataset training (MultiTrain: "Multi-dataset Training of Transformers for Robust Action
Recognition", NeurIPS 2022, and its supplement §2.1): one backbone, a head per dataset.

**Network** (:class:`MultiTrainNetwork`): the backbone's pooled embedding ``z`` feeds one classifier
per dataset through the backbone head's dropout (a 2-layer MLP with 2048 hidden units and GELU, or a
linear layer), an *expander* without it, as in MultiTrain's code (a 2-layer MLP, 2048 hidden, GELU)
and, for every ordered pair of datasets ``a → b``, a linear layer without bias from head a's logits
(C_a) to b's label space (C_b). In training one forward returns ``(B, ΣC + E + Σ_pairs C_b)``: the
heads' logits, the expander output, the projections; in eval mode the heads' logits ``(B, ΣC)``
alone, and :meth:`MultiTrain.for_inference` drops the expander and the projections (they train only).

**Targets** float ``(1 + ΣC)``: the dataset's index, then its one-hot (softmax heads) or multi-hot
(sigmoid heads) labels in its own block of the merged label space, zeros elsewhere.

**Loss** (batches mix datasets; a sample counts only for its own dataset):

- dataset d: ``L_d = Σ_{i ∈ d} ℓ_d(i) / B``, ``ℓ_d`` soft-target cross-entropy (softmax) or mean
  per-class BCE (sigmoid), B the batch;
- projection ``a → d``: soft-target cross-entropy of ``P_{a→d}(logits_a)`` against d's labels on d's
  samples, ``Σ_{i ∈ d} / B``, averaged over the pairs ending in d, times ``projection_weight`` (1.0)
  and added to ``L_d``;
- informative loss (VICReg-style) on the expander output over the global batch (gathered from every
  process, with gradient): ``variance_weight · mean_j relu(1 - sqrt(var_j + 1e-4))`` (25) plus
  ``covariance_weight · Σ_{j≠k} cov_jk² / dim`` (1), weighted ``informative_weight`` (0.1);
- total: ``Σ_d loss_weight_d · L_d + informative``.

**Evaluation** per dataset (:meth:`MultiTrain.evaluation_tasks`), each with its views and metric
(top-1/top-5, or mAP); the best checkpoint has the highest ``mean``, the mean over datasets of
each head's metric (top-1, or mAP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vidgrid.config import Config, MultiTrainConfig, TaskConfig
from vidgrid.data.annotations import Sample
from vidgrid.errors import ConfigError, DataError
from vidgrid.tasks.base import Task, register_task
from vidgrid.tasks.classification import Classification, per_sample_cross_entropy
from vidgrid.tasks.multi_label import MultiLabelClassification

VARIANCE_EPS = 1e-4
MEAN_METRIC = "mean"


@dataclass(frozen=True)
class Head:
    """One dataset's head: its classes (without the dataset prefix), loss, weight and place in the merged outputs."""

    name: str
    classes: tuple[str, ...]
    loss: Literal["softmax", "sigmoid"]
    weight: float
    start: int
    """Index of the head's first logit among the merged outputs (and its first target column after the dataset index)."""

    @property
    def stop(self) -> int:
        return self.start + len(self.classes)

    @property
    def metric(self) -> str:
        """The metric that stands for this head in the ``mean``."""
        return "top1" if self.loss == "softmax" else "mAP"


def pairs(heads: Sequence[Head]) -> list[tuple[Head, Head]]:
    """Every ordered pair ``(a, b)`` of different heads, in the order of the projection outputs."""
    return [(a, b) for a in heads for b in heads if a.name != b.name]


def projection_key(a: str, b: str) -> str:
    return f"{a}_to_{b}"


# --------------------------------------------------------------------------------------------------
# losses


def informative_loss(z: torch.Tensor, *, variance_weight: float, covariance_weight: float) -> tuple[torch.Tensor, ...]:
    """VICReg's variance and covariance terms of embeddings ``(N, D)``: ``(weighted sum, variance, covariance)``.

    variance ``mean_j relu(1 - sqrt(var_j + 1e-4))``; covariance ``Σ_{j≠k} C_jk² / D`` with ``C`` the
    (unbiased) covariance matrix. A collapsed embedding (every row equal) gives variance ≈ 0.99; a
    decorrelated one of unit variance gives ≈ 0 for both."""
    z = z.float()
    n, dim = z.shape
    centred = z - z.mean(dim=0)
    var = centred.pow(2).sum(dim=0) / max(n - 1, 1)
    variance = F.relu(1.0 - torch.sqrt(var + VARIANCE_EPS)).mean()
    cov = centred.T @ centred / max(n - 1, 1)  # (D, D)
    covariance = (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / dim
    return variance_weight * variance + covariance_weight * covariance, variance, covariance


def unit_variance_reach(*, variance_weight: float, covariance_weight: float) -> float:
    """The most outputs per covariance rank at which the informative loss is lowest with every output
    at unit variance (:func:`hinge_balance` = 1): ``1 + variance_weight / (4 covariance_weight)``."""
    return 1 + variance_weight / (4 * covariance_weight) if covariance_weight else math.inf


def hinge_balance(outputs: int, batch: int, *, variance_weight: float, covariance_weight: float) -> float:
    """The standard deviation ``s`` per output at which the informative loss is lowest when ``batch``
    rows give ``outputs`` values each (``inf``: the hinge's 1 is reachable whatever the penalty).

    ``batch`` rows give a covariance of rank ``r = batch - 1``, so with equal variances the penalty is
    at least ``s⁴ (outputs / r - 1)``; ``variance_weight (1 - s) + covariance_weight s⁴ (outputs / r -
    1)`` is lowest at ``s = (variance_weight / (4 covariance_weight (outputs / r - 1)))^(1/3)``. The
    hinge is met when that is ≥ 1: VICReg's 8,192 outputs over 2,048 rows give 1.28, the supplement's
    2,048 over a batch of 512 give 1.28, 512 outputs over 8 rows 0.44. MultiTrain's released recipe
    (its expander outputs the embedding's 768 values; 64 clips a step, gradients accumulated 8 times)
    gives 0.82."""
    excess = outputs / max(batch - 1, 1) - 1
    if excess <= 0:
        return math.inf
    reach = unit_variance_reach(variance_weight=variance_weight, covariance_weight=covariance_weight)
    return ((reach - 1) / excess) ** (1 / 3)  # no covariance penalty: reach and so the balance are inf


class _GatherWithGrad(torch.autograd.Function):
    """All-gather of rows whose count may differ by process (an epoch's last batch); the backward sums
    every process's gradient of the gathered rows and returns this process's share (each process
    computes the same global loss, and DDP averages the parameters' gradients)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        counts = [torch.zeros(1, dtype=torch.int64, device=z.device) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([z.shape[0]], device=z.device))
        counts = [int(c) for c in counts]
        padded = z.new_zeros((max(counts), *z.shape[1:]))
        padded[: z.shape[0]] = z
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        ctx.counts, ctx.rank = counts, dist.get_rank()
        return torch.cat([part[:n] for part, n in zip(parts, counts)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]]


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """``(n_r, D)`` rows of every process r concatenated in rank order, with gradient (identity in a
    world of one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    return _GatherWithGrad.apply(z)


def per_sample_loss(kind: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` losses: soft-target cross-entropy (softmax) or the mean per-class BCE (sigmoid)."""
    if kind == "softmax":
        return per_sample_cross_entropy(logits, targets)
    return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none").mean(dim=-1)


def as_distribution(targets: torch.Tensor) -> torch.Tensor:
    """Rows scaled to sum 1 (multi-hot labels as a soft target; an all-zero row stays zero)."""
    return targets / targets.sum(dim=-1, keepdim=True).clamp(min=1e-12)


# --------------------------------------------------------------------------------------------------
# network


def head_layer(kind: str, in_features: int, hidden: int, out_features: int) -> nn.Module:
    """A 2-layer MLP (``hidden`` units, GELU) or a linear layer (supplement §2.1)."""
    if kind == "linear":
        return nn.Linear(in_features, out_features)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, out_features))


class MultiTrainHeads(nn.Module):
    """Everything on top of the embedding: ``classifier`` (one per dataset), ``expander``, ``projection``."""

    def __init__(self, heads: Sequence[Head], *, in_features: int, kind: str, hidden: int) -> None:
        super().__init__()
        self.classifier = nn.ModuleDict({h.name: head_layer(kind, in_features, hidden, len(h.classes)) for h in heads})
        self.expander: nn.Module | None = head_layer("mlp", in_features, hidden, hidden)
        self.projection: nn.ModuleDict | None = nn.ModuleDict(
            {projection_key(a.name, b.name): nn.Linear(len(a.classes), len(b.classes), bias=False) for a, b in pairs(heads)}
        )
        for layer in self.projection.values():
            nn.init.zeros_(layer.weight)  # no correspondence until the data shows one


class MultiTrainNetwork(nn.Module):
    """Backbone (its classifier removed) + :class:`MultiTrainHeads` under ``head`` (the head LR group)."""

    def __init__(self, model: nn.Module, heads: Sequence[Head], *, kind: str, hidden: int) -> None:
        super().__init__()
        model.reset_classifier(0)  # forward_head(pre_logits=True) is the embedding
        self.backbone = model
        self.heads = list(heads)
        self.head = MultiTrainHeads(heads, in_features=model.head.in_features, kind=kind, hidden=hidden)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Clips ``(B, C, T, H, W)`` -> the pooled embedding ``(B, D)``."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        dropped = self.backbone.head.dropout(z)  # the classifiers' input; the expander's is z (as MultiTrain's code)
        logits = torch.cat([self.head.classifier[h.name](dropped).float() for h in self.heads], dim=1)  # (B, ΣC)
        if not self.training or self.head.projection is None:
            return logits
        expanded = self.head.expander(z).float()  # (B, E)
        projected = [self.head.projection[projection_key(a.name, b.name)](logits[:, a.start : a.stop]) for a, b in pairs(self.heads)]
        return torch.cat([logits, expanded, *projected], dim=1)  # (B, ΣC + E + Σ C_b)

    def no_weight_decay(self) -> set[str]:
        if hasattr(self.backbone, "no_weight_decay"):
            return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}
        return set()


# --------------------------------------------------------------------------------------------------
# evaluation of one head


class _HeadView:
    """A single-dataset task's evaluation on one head's slice of the merged outputs and targets."""

    head: Head

    def local_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Merged targets ``(..., 1 + ΣC)`` -> this head's: class ids (softmax) or multi-hot (sigmoid)."""
        block = targets[..., 1:][..., self.head.start : self.head.stop].float()
        return block.argmax(dim=-1) if self.head.loss == "softmax" else block

    def aggregate_views(self, outputs: torch.Tensor) -> torch.Tensor:
        return super().aggregate_views(outputs[..., self.head.start : self.head.stop])

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return super().metrics(scores, self.local_targets(targets))

    def record(self, scores: torch.Tensor, target: torch.Tensor, *, top: int = 5) -> dict[str, Any]:
        return super().record(scores, self.local_targets(target), top=top)

    def write_plots(self, out_dir: Path, scores: torch.Tensor, targets: torch.Tensor) -> list[Path]:
        return super().write_plots(out_dir, scores, self.local_targets(targets))


class SoftmaxHeadView(_HeadView, Classification):
    def __init__(self, head: Head) -> None:
        Classification.__init__(self, head.classes)
        self.head = head


class SigmoidHeadView(_HeadView, MultiLabelClassification):
    def __init__(self, head: Head) -> None:
        MultiLabelClassification.__init__(self, head.classes)
        self.head = head


def head_view(head: Head) -> Task:
    return SoftmaxHeadView(head) if head.loss == "softmax" else SigmoidHeadView(head)


# --------------------------------------------------------------------------------------------------
# the task


@register_task
class MultiTrain(Task):
    """A head per dataset of the recipe's ``datasets`` on one backbone; informative and projection losses."""

    name = "multitrain"
    best_metric = MEAN_METRIC

    def __init__(self, classes: Sequence[str], heads: Sequence[Head], settings: MultiTrainConfig) -> None:
        super().__init__(classes)
        self.heads = list(heads)
        self.settings = settings
        self.views = {h.name: head_view(h) for h in self.heads}
        self.shown = [h.name for h in self.heads]
        """The heads :meth:`prediction` reports (``vidgrid predict --head``)."""

    @classmethod
    def from_config(cls, classes: Sequence[str], settings: TaskConfig | None) -> Task:
        raise ConfigError("'task.name' = 'multitrain': needs the recipe's 'datasets' list")

    @classmethod
    def for_run(cls, classes: Sequence[str], cfg: Config) -> MultiTrain:
        """The heads of ``cfg.datasets`` over merged classes named ``<dataset>/<class>``."""
        heads, start = [], 0
        for d in cfg.datasets:
            own = tuple(c.split("/", 1)[1] for c in classes if c.split("/", 1)[0] == d.name)
            if not own:
                raise ConfigError(f"'datasets': {d.name!r} has no classes among the {len(classes)} given")
            heads.append(Head(d.name, own, d.loss, d.loss_weight, start))
            start += len(own)
        if start != len(classes):
            raise ConfigError(f"'datasets': the classes name datasets besides {', '.join(d.name for d in cfg.datasets)}")
        return cls(classes, heads, cfg.multitrain)

    def training_note(self, batch: int) -> str:
        """Says so when the informative loss's variance hinge cannot be met at ``batch`` clips a step
        (:func:`hinge_balance`), with the batch and the expander width that would meet it."""
        s = self.settings
        if s.informative_weight == 0 or s.variance_weight == 0:
            return ""
        weights = dict(variance_weight=s.variance_weight, covariance_weight=s.covariance_weight)
        balance = hinge_balance(s.hidden, batch, **weights)
        if balance >= 1:
            return ""
        reach = unit_variance_reach(**weights)
        return (
            f"the informative loss cannot reach unit variance at {batch} clips a step: {s.hidden} expander outputs "
            f"(multitrain.hidden) of covariance rank {batch - 1} settle near SD {balance:.2f}; it needs at least "
            f"{math.ceil(s.hidden / reach) + 1} clips a step, or at most {math.floor((batch - 1) * reach)} outputs "
            "(README: MultiTrain at small batches)"
        )

    def head(self, name: str) -> Head:
        """The head ``name``; another name is a ConfigError listing the heads."""
        for h in self.heads:
            if h.name == name:
                return h
        raise ConfigError(f"head {name!r}: expected one of {', '.join(h.name for h in self.heads)}")

    # model
    def attach(self, model: nn.Module) -> nn.Module:
        return MultiTrainNetwork(model, self.heads, kind=self.settings.head, hidden=self.settings.hidden)

    def for_inference(self, model: nn.Module) -> nn.Module:
        """The network without the expander and the projections (they only train)."""
        model.head.expander = None
        model.head.projection = None
        return model

    # data
    def target(self, sample: Sample) -> torch.Tensor:
        """float ``(1 + ΣC)``: the dataset index, then the one-hot / multi-hot labels in the merged space."""
        labels = list(sample.labels) if sample.label < 0 else [sample.label]
        owner = [k for k, h in enumerate(self.heads) if h.start <= labels[0] < h.stop] if labels else []
        if not owner or any(not self.heads[owner[0]].start <= k < self.heads[owner[0]].stop for k in labels):
            raise DataError(f"{sample.path}: labels {labels} do not lie in one dataset's classes")
        target = torch.zeros(1 + self.num_outputs)
        target[0] = owner[0]
        target[[1 + k for k in labels]] = 1.0
        return target

    # training
    def soft_targets(self, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        """Label smoothing inside each sample's own block: ``ε/C_d`` (softmax heads) or ``ε/2`` per class (sigmoid)."""
        out = targets.float().clone()
        if smoothing == 0:
            return out
        dataset = targets[:, 0].long()
        for d, h in enumerate(self.heads):
            rows = dataset == d
            block = out[rows, 1 + h.start : 1 + h.stop]
            off = smoothing / len(h.classes) if h.loss == "softmax" else smoothing / 2
            out[rows, 1 + h.start : 1 + h.stop] = block * (1.0 - smoothing) + off
        return out

    def mix_partners(self, targets: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        """Mixup / CutMix within a dataset: each sample's partner is the next sample of its own dataset
        in the order of ``perm`` (a permutation of every dataset's rows)."""
        dataset = targets[:, 0].long()
        out = torch.arange(len(perm), device=perm.device)
        for d in range(len(self.heads)):
            order = perm[dataset[perm] == d]  # this dataset's rows, shuffled
            out[order] = order.roll(1)
        return out

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.losses(outputs, targets)["total"]

    def losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The total and its parts: ``<dataset>`` (with its projection term), ``<a>_to_<b>``, ``informative``."""
        s, total_classes, batch = self.settings, self.num_outputs, outputs.shape[0]
        logits, labels = outputs[:, :total_classes], targets[:, 1:].float()
        expanded = outputs[:, total_classes : total_classes + s.hidden]
        projected = outputs[:, total_classes + s.hidden :]
        dataset = targets[:, 0].long()
        parts: dict[str, torch.Tensor] = {}
        total = outputs.new_zeros(())
        at = 0
        projections: dict[str, list[torch.Tensor]] = {h.name: [] for h in self.heads}
        for a, b in pairs(self.heads):
            width = len(b.classes)
            mask = (dataset == self.heads.index(b)).float()
            term = (per_sample_loss("softmax", projected[:, at : at + width], as_distribution(labels[:, b.start : b.stop])) * mask).sum() / batch
            parts[projection_key(a.name, b.name)] = term
            projections[b.name].append(term)
            at += width
        for d, h in enumerate(self.heads):
            mask = (dataset == d).float()
            own = (per_sample_loss(h.loss, logits[:, h.start : h.stop], labels[:, h.start : h.stop]) * mask).sum() / batch
            if projections[h.name]:
                own = own + s.projection_weight * torch.stack(projections[h.name]).mean()
            parts[h.name] = own
            total = total + h.weight * own
        informative, variance, covariance = informative_loss(
            gather_with_grad(expanded), variance_weight=s.variance_weight, covariance_weight=s.covariance_weight
        )
        parts.update(informative=informative, variance=variance, covariance=covariance)
        parts["total"] = total + s.informative_weight * informative
        return parts

    # evaluation
    def evaluation_tasks(self) -> dict[str, Task]:
        return dict(self.views)

    def combine_metrics(self, per_part: dict[str, dict[str, float]]) -> dict[str, float]:
        """``<dataset>/<metric>`` for every head, and ``mean``: the mean of each head's top-1 (or mAP)."""
        flat = {f"{name}/{k}": v for name, metrics in per_part.items() for k, v in metrics.items()}
        flat[MEAN_METRIC] = sum(per_part[h.name][h.metric] for h in self.heads) / len(self.heads)
        return flat

    def summary_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The flat metrics and ``datasets``: each dataset's metrics keyed by its name."""
        return {**metrics, "datasets": {h.name: {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(h.name + "/")}
                             for h in self.heads}}

    def aggregate_views(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(B, V, ΣC)`` -> ``(B, ΣC)``: each head's aggregate (mean softmax, or max sigmoid)."""
        return torch.cat([self.views[h.name].aggregate_views(outputs) for h in self.heads], dim=-1)

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Metrics of videos of every dataset scored by every head: each head on its own dataset's videos."""
        dataset = targets[:, 0].long()
        per_part = {h.name: self.views[h.name].metrics(scores[dataset == d][:, h.start : h.stop], targets[dataset == d])
                    if bool((dataset == d).any()) else self.views[h.name].empty_metrics() for d, h in enumerate(self.heads)}
        return self.combine_metrics(per_part)

    def empty_metrics(self) -> dict[str, float]:
        return self.combine_metrics({h.name: self.views[h.name].empty_metrics() for h in self.heads})

    def record(self, scores: torch.Tensor, target: torch.Tensor, *, top: int = 5) -> dict[str, Any]:
        h = self.heads[int(target[0])]
        return {"dataset": h.name, **self.views[h.name].record(scores[h.start : h.stop], target, top=top)}

    def for_heads(self, names: Sequence[str]) -> Task:
        """Predictions of the heads ``names`` only (every head when empty); an unknown name is a ConfigError."""
        for name in names:
            self.head(name)
        self.shown = list(names) or [h.name for h in self.heads]
        return self

    def prediction(self, scores: torch.Tensor, *, top: int) -> dict[str, Any]:
        """``{"heads": {name: {"top": [...]}}}`` for the heads shown (default: every head)."""
        chosen = [self.head(n) for n in self.shown]
        return {"heads": {h.name: self.views[h.name].prediction(scores[h.start : h.stop], top=top) for h in chosen}}

    def format_prediction(self, prediction: dict[str, Any]) -> list[str]:
        rows = []
        for name, p in prediction["heads"].items():
            rows += [f" {name}:", *self.views[name].format_prediction(p)]
        return rows

    def format_metrics(self, metrics: dict[str, float]) -> str:
        """``kinetics: top-1 80.0% · ... | charades: mAP ... | mean 71.2%``."""
        parts = []
        for h in self.heads:
            own = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(h.name + "/")}
            parts.append(f"{h.name}: {self.views[h.name].format_metrics({**self.views[h.name].empty_metrics(), **own})}")
        return " | ".join(parts) + f" | mean {100 * metrics.get(MEAN_METRIC, 0.0):.1f}%"
