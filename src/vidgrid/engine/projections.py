"""``vidgrid inspect projections``: what the cross-dataset projection heads of a multi-dataset run
learned (MultiTrain supplement §2.4, Table 4: "the top-5 final cross-dataset projection layer weights").

For every ordered pair ``a → b`` the projection is a ``(C_b, C_a)`` weight matrix from head a's
logits to b's label space; its largest entries are the (source class, target class) pairs it ties
most strongly. Printed as Table 4's rows (``a to b  [('source', 'target'), ...]``), or ``--json``
with the weights, and drawn as one heat map per pair (``<a>_to_<b>.png``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vidgrid.engine.checkpoint import list_checkpoints
from vidgrid.engine.weights import Weights, load_weights
from vidgrid.errors import CheckpointError
from vidgrid.tasks import task_class
from vidgrid.tasks.multitrain import pairs, projection_key

PROJECTION_PREFIX = "head.projection."


def checkpoint_of(path: Path) -> Path:
    """A checkpoint file as given, or a run folder's ``checkpoints/best.pt`` (else its newest checkpoint)."""
    if not path.is_dir():
        return path
    best = path / "checkpoints" / "best.pt"
    found = [best] if best.exists() else list_checkpoints(path / "checkpoints")
    if not found:
        raise CheckpointError(f"{path}: no checkpoints/ with a checkpoint (expected a run folder of vidgrid train)")
    return found[-1]


def projection_weights(weights: Weights) -> dict[tuple[str, str], tuple[torch.Tensor, list[str], list[str]]]:
    """``(a, b)`` -> (the ``(C_b, C_a)`` weight, a's classes, b's classes) of every projection of a
    multi-dataset checkpoint; other files are a CheckpointError."""
    if weights.config is None or not weights.config.datasets:
        raise CheckpointError(f"{weights.path}: not a multi-dataset checkpoint (no 'datasets' in its config)")
    task = task_class(weights.task).for_run(weights.classes or [], weights.config)
    out = {}
    for a, b in pairs(task.heads):
        key = f"{PROJECTION_PREFIX}{projection_key(a.name, b.name)}.weight"
        if key in weights.state:
            out[(a.name, b.name)] = (weights.state[key].float().cpu(), list(a.classes), list(b.classes))
    if not out:
        raise CheckpointError(f"{weights.path}: holds no projection heads (exported weights drop them; use a training checkpoint)")
    return out


def top_pairs(weight: torch.Tensor, sources: Sequence[str], targets: Sequence[str], k: int = 5) -> list[tuple[str, str, float]]:
    """The ``k`` largest entries of a ``(C_b, C_a)`` projection as (source class, target class, weight), largest first."""
    best = weight.flatten().topk(min(k, weight.numel()))
    columns = weight.shape[1]
    return [(sources[i % columns], targets[i // columns], round(float(v), 5)) for v, i in zip(best.values.tolist(), best.indices.tolist())]


def top_target(weight: torch.Tensor, targets: Sequence[str]) -> list[str]:
    """Each source class's most strongly tied target class (the column-wise argmax)."""
    return [targets[i] for i in weight.argmax(dim=0).tolist()]


def correspondence_found(weight: torch.Tensor, sources: Sequence[str], targets: Sequence[str],
                         truth: Mapping[str, set[str]]) -> tuple[int, int]:
    """(source classes whose top target is a true correspondence, source classes that have one)."""
    tops = top_target(weight, targets)
    having = [(s, t) for s, t in zip(sources, tops) if truth.get(s)]
    return sum(t in truth[s] for s, t in having), len(having)


def table_rows(pairs: Mapping[tuple[str, str], tuple[torch.Tensor, list[str], list[str]]], k: int) -> list[dict[str, Any]]:
    return [{"pair": f"{a} to {b}", "source": a, "target": b,
             "top": [{"source": s, "target": t, "weight": w} for s, t, w in top_pairs(weight, src, dst, k)]}
            for (a, b), (weight, src, dst) in pairs.items()]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Table 4's form: ``Cross-dataset Pair`` and ``Top-k Action Pairs`` as a list of (source, target)."""
    k = max((len(r["top"]) for r in rows), default=5)
    width = max([len("Cross-dataset Pair"), *(len(r["pair"]) for r in rows)])
    lines = [f"{'Cross-dataset Pair':<{width}}  Top-{k} Action Pairs"]
    for r in rows:
        lines.append(f"{r['pair']:<{width}}  {[(p['source'], p['target']) for p in r['top']]}")
    return "\n".join(lines)


def plot_projection(path: Path, weight: torch.Tensor, sources: Sequence[str], targets: Sequence[str], title: str) -> Path:
    """The ``(C_b, C_a)`` weight as a heat map (rows: target classes, columns: source classes)."""
    from matplotlib.figure import Figure

    rows, columns = weight.shape
    fig = Figure(figsize=(min(3 + 0.35 * columns, 16), min(2.5 + 0.35 * rows, 16)), layout="constrained")
    ax = fig.subplots()
    bound = float(weight.abs().max()) or 1.0
    image = ax.imshow(weight.numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, label="projection weight")
    if columns <= 40 and rows <= 40:
        ax.set_xticks(range(columns), labels=list(sources), rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(rows), labels=list(targets), fontsize=8)
    ax.set_xlabel("source class")
    ax.set_ylabel("target class")
    ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def inspect_projections_command(source: Path, *, out: Path | None, top: int = 5, as_json: bool = False) -> int:
    """Print the top pairs of every projection and write a heat map per pair into ``out`` (default:
    ``projections/`` beside the checkpoints folder, or beside a checkpoint file)."""
    checkpoint = checkpoint_of(source)
    found = projection_weights(load_weights(checkpoint))
    folder = out or (source / "projections" if source.is_dir() else checkpoint.parent / f"{checkpoint.stem}-projections")
    files = [str(plot_projection(folder / f"{projection_key(a, b)}.png", weight, src, dst, f"projection {a} → {b}"))
             for (a, b), (weight, src, dst) in found.items()]
    rows = table_rows(found, top)
    if as_json:
        print(json.dumps({"checkpoint": str(checkpoint), "pairs": rows, "figures": files}, indent=2))
    else:
        print(f"{checkpoint}\n{format_table(rows)}\n" + "\n".join(f"written: {f}" for f in files))
    return 0
