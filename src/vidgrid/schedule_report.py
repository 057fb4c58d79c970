"""``vidgrid schedule``: the multigrid schedule of a recipe as a table, JSON, and a plot in the spirit
of the multigrid paper's Fig. 2 (crop, frames, batch and LR against iteration). Command-line layer:
it reads the training list to count the videos."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from vidgrid.config import Config
from vidgrid.errors import ConfigError
from vidgrid.multigrid.schedule import MultigridSchedule, epoch_plan, schedule_from_config


def schedule_command(
    cfg: Config, *, dataset_size: int | None, processes: int, plot: str | None, as_json: bool
) -> int:
    """Print the schedule of ``cfg`` and its totals against the baseline recipe; write ``plot``."""
    if processes < 1:
        raise ConfigError(f"--processes {processes}: expected an integer >= 1")
    size = dataset_size if dataset_size is not None else _count_train_list(cfg)
    if size < 1:
        raise ConfigError(f"--dataset-size {size}: expected an integer >= 1")
    schedule = schedule_from_config(cfg, processes=processes)
    base_cfg = dataclasses.replace(cfg, multigrid=dataclasses.replace(cfg.multigrid, enabled=False))
    baseline = schedule_from_config(base_cfg, processes=processes)
    report = schedule_report(schedule, baseline, dataset_size=size, base_lr=_base_lr(cfg))
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    if plot:
        plot_schedule(schedule, baseline, dataset_size=size, base_lr=_base_lr(cfg), path=Path(plot))
        if not as_json:
            print(f"plot: {plot}")
    return 0


def _count_train_list(cfg: Config) -> int:
    """Training videos in ``data.train_list`` (the default ``--dataset-size``); with ``datasets``, the
    clips of an epoch (each dataset's videos times its ``sampling_weight``)."""
    if cfg.datasets:
        from vidgrid.data.multi_dataset import slot_counts
        from vidgrid.engine.build import load_dataset_split

        sizes = [len(load_dataset_split(cfg, k, "train").samples) for k in range(len(cfg.datasets))]
        return sum(slot_counts(sizes, [d.sampling_weight for d in cfg.datasets]))
    if not cfg.data.train_list:
        raise ConfigError("'data.train_list' is empty: give --dataset-size N or set data.train_list=LIST")
    from vidgrid.data.annotations import load_annotations

    annotations = load_annotations(
        cfg.data.train_list, root=cfg.data.root or None, format=cfg.data.format, classes=cfg.data.classes or None
    )
    return len(annotations.samples)


def _base_lr(cfg: Config) -> float:
    """``optim.lr`` scaled linearly from ``optim.reference_batch`` to ``train.batch_size``."""
    return cfg.optim.lr * cfg.train.batch_size / (cfg.optim.reference_batch or cfg.train.batch_size)


def schedule_report(
    schedule: MultigridSchedule, baseline: MultigridSchedule, *, dataset_size: int, base_lr: float
) -> dict[str, Any]:
    """Plain data for the table and ``--json``: segments, totals, and the baseline's totals."""
    p = schedule.processes
    segments = [
        {
            "start_epoch": seg.start_epoch,
            "end_epoch": seg.end_epoch,
            "frames": seg.shape.frames,
            "crop": seg.shape.crop,
            "global_batch": seg.base_batch,
            "lr_multiplier": seg.lr_multiplier,
            "lr_stage": seg.lr_stage,
            "lr": base_lr * schedule.lr_factor(seg.start_epoch),
            "iterations": schedule.iterations(seg, dataset_size),
            "short_cycle": [
                {"frames": s.shape.frames, "crop": s.shape.crop, "global_batch": s.global_batch,
                 "batch_per_process": s.global_batch // p}
                for s in seg.steps
            ],
        }
        for seg in schedule.segments
    ]
    iterations = schedule.total_iterations(dataset_size)
    base_iterations = baseline.total_iterations(dataset_size)
    return {
        "dataset_size": dataset_size,
        "processes": p,
        "segments": segments,
        "multigrid": {
            "epochs": schedule.total_epochs,
            "iterations": iterations,
            "relative_compute": compute(schedule, dataset_size) / compute(baseline, dataset_size),
        },
        "baseline": {"epochs": baseline.total_epochs, "iterations": base_iterations},
        "iteration_reduction": base_iterations / iterations,
        "note": schedule.note,
    }


def compute(schedule: MultigridSchedule, dataset_size: int) -> float:
    """Training cost in clip-frame-pixels (Σ batch × t × s² over all iterations), ∝ FLOPs (Eq. 1)."""
    total = 0.0
    for seg in schedule.segments:
        plan = epoch_plan(dataset_size, seg.global_batches, schedule.processes)
        shapes = (seg.steps[i % len(seg.steps)].shape for i in range(len(plan)))
        total += seg.epochs * sum(b * shape.frames * shape.crop**2 for b, shape in zip(plan, shapes))
    return total


def format_report(report: dict[str, Any]) -> str:
    """The table: one row per segment, then the totals against the baseline."""
    rows = [("epochs", "shape", "stage", "short cycle: shape batch/process (global)", "LR", "iterations")]
    for seg in report["segments"]:
        cycle = ", ".join(
            f"{s['frames']}x{s['crop']}² {s['batch_per_process']} ({s['global_batch']})" for s in seg["short_cycle"]
        )
        rows.append((
            f"{seg['start_epoch']}-{seg['end_epoch']}", f"{seg['frames']}x{seg['crop']}²", str(seg["lr_stage"]),
            cycle, f"{seg['lr']:.4g} (x{seg['lr_multiplier']:g})", f"{seg['iterations']:,}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if i == 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    mg, base = report["multigrid"], report["baseline"]
    lines += [
        "",
        f"{report['dataset_size']:,} videos, {report['processes']} process(es)",
        f"multigrid: {mg['epochs']} epochs, {mg['iterations']:,} iterations, "
        f"compute {mg['relative_compute']:.2f}x the baseline's",
        f"baseline:  {base['epochs']} epochs, {base['iterations']:,} iterations",
        f"iterations: {report['iteration_reduction']:.2f}x fewer than the baseline",
    ]
    if report["note"]:
        lines.append(f"note: {report['note']}")
    return "\n".join(lines)


def _per_iteration(schedule: MultigridSchedule, dataset_size: int, base_lr: float) -> dict[str, list[float]]:
    """Crop, frames, global batch and LR (without warm-up) at every iteration of the schedule."""
    series: dict[str, list[float]] = {"crop": [], "frames": [], "batch": [], "lr": []}
    for seg in schedule.segments:
        plan = epoch_plan(dataset_size, seg.global_batches, schedule.processes)
        for epoch in range(seg.start_epoch, seg.end_epoch):
            for i in range(len(plan)):
                step = seg.steps[i % len(seg.steps)]
                series["crop"].append(step.shape.crop)
                series["frames"].append(step.shape.frames)
                series["batch"].append(step.global_batch)  # nominal (an epoch's last batch may be smaller)
                series["lr"].append(base_lr * schedule.lr_factor(epoch + i / len(plan)))
    return series


def plot_schedule(
    schedule: MultigridSchedule, baseline: MultigridSchedule, *, dataset_size: int, base_lr: float, path: Path
) -> None:
    """PNG of crop, frames, global batch and LR against iteration, multigrid over the baseline (grey)."""
    from matplotlib.figure import Figure  # Agg canvas, no GUI backend

    mg = _per_iteration(schedule, dataset_size, base_lr)
    base = _per_iteration(baseline, dataset_size, base_lr)
    fig = Figure(figsize=(9, 8), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    labels = {"crop": "crop (px)", "frames": "frames", "batch": "global batch", "lr": "LR (no warm-up)"}
    for ax, key in zip(axes, labels):
        ax.plot(range(len(base[key])), base[key], color="0.6", lw=1.0, label="baseline")
        ax.plot(range(len(mg[key])), mg[key], color="tab:green", lw=0.4, label="multigrid")
        ax.set_ylabel(labels[key])
        if key in ("batch", "lr"):
            ax.set_yscale("log")
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("iteration")
    fig.suptitle(
        f"multigrid {schedule.total_epochs} epochs / {len(mg['lr']):,} iterations vs "
        f"baseline {baseline.total_epochs} epochs / {len(base['lr']):,} iterations"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
