"""Inference cost per video (X3D supplement §B, Fig. A.1): top-1 against the FLOPs of a whole video.

``vidgrid eval --views K ...`` tests a checkpoint with K-Center views (K uniformly spaced temporal
clips, the centre crop of each) for each K (the supplement: K ∈ {1, 3, 5, 7, 10}) and reports the
top-1 against the total cost per video, GFLOPs per view × K ("GFLOPs" are multiply-adds, as in the
X3D paper). Each K's evaluation goes to ``OUT/views_K/``; the curve to ``OUT/views.json``::

    {"model": "x3d_s", "checkpoint": "...", "input": [3, 13, 160, 160], "gflops_per_view": 1.96,
     "points": [{"views": 1, "top1": 0.65, "gflops": 1.96}, ...]}

``vidgrid plot views RUN ...`` draws the curves of several models on a linear and a logarithmic FLOPs
axis (Fig. A.1, left and right); RUN is a ``views.json``, the folder holding it, or a run folder whose
``eval/views.json`` it is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidgrid.config import Config
from vidgrid.engine.evaluate import evaluate_checkpoint, test_crop
from vidgrid.engine.weights import load_weights, model_from_weights
from vidgrid.errors import VidgridError
from vidgrid.models.profile import count_gmacs

VIEWS_FILE = "views.json"
DEFAULT_VIEWS = (1, 3, 5, 7, 10)
"""The supplement's K of Fig. A.1."""


def view_gmacs(cfg: Config, checkpoint: Path) -> tuple[str, list[int], float]:
    """(model name, test input [C, T, H, W], GMACs of one view) of the checkpoint's model under ``cfg``."""
    weights = load_weights(checkpoint)
    model, _, _ = model_from_weights(weights, recipe=cfg)
    shape = (3, cfg.data.frames, test_crop(cfg), test_crop(cfg))
    return weights.model_name, list(shape), count_gmacs(copy.deepcopy(model).to("meta"), shape)


def evaluate_views(cfg: Config, checkpoint: Path, out_dir: Path, views: Sequence[int]) -> dict[str, Any]:
    """Evaluate with each K of ``views`` centre-crop clips; write and print the accuracy/cost curve."""
    bad = [k for k in views if k < 1]
    if bad:
        raise VidgridError(f"--views {bad[0]}: expected integers >= 1 (clips per video)")
    name, shape, gmacs = view_gmacs(cfg, checkpoint)
    points = []
    for k in sorted(set(views)):
        per_k = copy.deepcopy(cfg)
        per_k.eval.clips, per_k.eval.crops = k, 1
        summary = evaluate_checkpoint(per_k, checkpoint, out_dir / f"views_{k}")
        if "top1" not in summary:
            raise VidgridError(f"{checkpoint}: the task reports no top-1; --views needs a single-label classifier")
        points.append({"views": k, "top1": summary["top1"], "gflops": round(gmacs * k, 5)})
    curve = {"model": name, "checkpoint": str(checkpoint), "input": shape, "gflops_per_view": round(gmacs, 5),
             "points": points}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / VIEWS_FILE).write_text(json.dumps(curve, indent=2) + "\n")
    print(f"\n{name}: {gmacs:.4f} GFLOPs per {'x'.join(map(str, shape[1:]))} view")
    print("views  top-1   GFLOPs/video")
    for p in points:
        print(f"{p['views']:>5}  {100 * p['top1']:5.1f}%  {p['gflops']:>12.4f}")
    print(f"written: {out_dir / VIEWS_FILE}")
    return curve


def read_curve(run: Path) -> tuple[str, dict[str, Any]]:
    """(label, views.json) of a RUN argument of ``vidgrid plot views``."""
    for path in (run, run / VIEWS_FILE, run / "eval" / VIEWS_FILE):
        if path.is_file():
            label = run.name if path != run else run.parent.name
            return label, json.loads(path.read_text())
    raise VidgridError(f"{run}: no {VIEWS_FILE} (write one with vidgrid eval --views 1 3 5 7 10)")


def plot_views(runs: Sequence[Path], out: Path) -> Path:
    """Top-1 against GFLOPs per video, one curve per model, K at each point; linear and log FLOPs axes."""
    from matplotlib.figure import Figure

    curves = [read_curve(Path(r)) for r in runs]
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    for ax, scale in zip(fig.subplots(1, 2), ("linear", "log")):
        for label, curve in curves:
            x = [p["gflops"] for p in curve["points"]]
            y = [100 * p["top1"] for p in curve["points"]]
            ax.plot(x, y, marker="o", label=f"{label} ({curve['model']})")
            for p, xi, yi in zip(curve["points"], x, y):
                ax.annotate(str(p["views"]), (xi, yi), textcoords="offset points", xytext=(3, -10), fontsize=7)
        ax.set_xscale(scale)
        ax.set_xlabel(f"inference GFLOPs per video ({scale} scale)")
        ax.set_ylabel("top-1 (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("accuracy against inference cost for K-Center clip testing (K at each point)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def views_plot_command(runs: Sequence[Path], out: Path) -> int:
    """``vidgrid plot views``: write the figure and print where it is."""
    print(f"plot: {plot_views(runs, out)}")
    return 0
