"""``vidgrid plot``: the figures people look at beside a run's own PNGs.

- ``mixup``: the Beta(α, α) densities of the Mixup / CutMix ratio λ, with how often each α mixes hard;
- ``runs``: loss, validation metric and learning rate of several runs, against iterations and wall time
  (the multigrid-vs-baseline figure of Wu et al., CVPR 2020, Fig. 1);
- ``schedule`` is :func:`vidgrid.schedule_report.schedule_command`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidgrid.engine.logging import METRICS_FILE, plot_pair, read_metrics, running_mean, series
from vidgrid.engine.mixup import beta_density, hard_mix_probability
from vidgrid.errors import VidgridError

RECORD_KEYS = {"split", "iteration", "epoch", "wall_s", "loss", "lr", "videos", "frames", "crop", "batch", "grad_norm",
               "clips_per_s", "clips_seen"}
"""Fields of a metrics record that are not validation metrics."""


def mixing_reading(alpha: float) -> str:
    """What Beta(α, α) does to the mixing ratio (practitioner's notes: larger α, stronger mixing)."""
    if alpha < 1:
        return "λ leans to 0 or 1: weak mixing"
    if alpha == 1:
        return "λ uniform"
    return "λ gathers at 0.5: strong mixing"


def mixup_lines(alphas: Sequence[float]) -> list[str]:
    """One line per α: P(0.25 < λ < 0.75) and the reading."""
    return [f"alpha {a:g}: P(0.25 < λ < 0.75) = {hard_mix_probability(a):.3f}; {mixing_reading(a)}" for a in alphas]


def plot_mixup(path: Path, alphas: Sequence[float]) -> Path:
    """The densities of λ ~ Beta(α, α), one curve per α, labelled with their reading."""
    from matplotlib.figure import Figure

    points = [(k + 0.5) / 500 for k in range(500)]
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for alpha in alphas:
        ax.plot(points, [beta_density(alpha, p) for p in points], label=f"α = {alpha:g}: {mixing_reading(alpha)}")
    ax.axvspan(0.25, 0.75, color="grey", alpha=0.1, lw=0)
    ax.set_ylim(0, 4)
    ax.set_xlabel("mixing ratio λ (share of the first clip)")
    ax.set_ylabel("density")
    ax.set_title("Mixup / CutMix: λ ~ Beta(α, α); larger α mixes harder (shaded: 0.25 < λ < 0.75)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    return path


def mixup_command(alphas: Sequence[float], out: Path) -> int:
    """Print how hard each α mixes and write the density plot."""
    bad = [a for a in alphas if not a > 0]
    if bad:
        raise VidgridError(f"--alpha {bad[0]:g}: expected values > 0")
    print("\n".join(mixup_lines(alphas)))
    print(f"plot: {plot_mixup(out, alphas)}")
    return 0


def validation_metric(records: list[dict]) -> str | None:
    """The first validation metric of a run's records (``top1`` for classification, ``mAP``...)."""
    for r in records:
        if r.get("split") == "val":
            keys = [k for k, v in r.items() if k not in RECORD_KEYS and isinstance(v, (int, float))]
            if keys:
                return keys[0]
    return None


def plot_runs(runs: Sequence[Path], out_dir: Path) -> list[Path]:
    """``runs_loss.png`` (training loss, a running mean over 2% of the points), ``runs_<metric>.png``
    and ``runs_lr.png`` of the runs overlaid, each against iteration and wall time."""
    loaded = []
    for run in runs:
        path = Path(run) / METRICS_FILE
        if not path.is_file():
            raise VidgridError(f"{run}: no {METRICS_FILE} (expected a run folder written by vidgrid train)")
        loaded.append((Path(run).name, read_metrics(path)))
    out_dir.mkdir(parents=True, exist_ok=True)
    loss = []
    for name, records in loaded:
        it, wall, values = series(records, "train", "loss")
        loss.append((name, it, wall, running_mean(values, max(1, len(values) // 50))))
    metric = validation_metric(loaded[0][1])
    figures = [("loss", "training loss (running mean)", "loss", loss),
               ("lr", "learning rate", "lr", [(n, *series(r, "train", "lr")) for n, r in loaded])]
    if metric is not None:
        figures.insert(1, (metric, f"validation {metric}", "%", [
            (name, it, wall, [100 * v for v in values]) for name, (it, wall, values) in
            ((n, series(r, "val", metric)) for n, r in loaded)]))
    written = []
    for key, title, ylabel, curves in figures:
        curves = [c for c in curves if c[3]]
        if curves:
            plot_pair(out_dir / f"runs_{key}.png", title, ylabel, curves)
            written.append(out_dir / f"runs_{key}.png")
    return written


def runs_command(runs: Sequence[Path], out_dir: Path) -> int:
    """Overlay the curves of ``runs`` and print the files written."""
    for path in plot_runs(runs, out_dir):
        print(f"plot: {path}")
    return 0
