"""What a person reads during and after a run: a progress line, ``metrics.jsonl``, TensorBoard, plots.

``metrics.jsonl`` holds one JSON object per line::

    {"split": "train", "iteration": 120, "epoch": 2.4, "wall_s": 61.3, "loss": 1.23, "lr": 0.05, ...}
    {"split": "val", "iteration": 500, "epoch": 10, "wall_s": 250.0, "top1": 0.91, "top5": 1.0, ...}

``split`` is ``train`` or ``val``; ``wall_s`` is training wall time (continued across resumes). The
same numbers go to TensorBoard as ``<split>/<key>`` at step ``iteration``. Only rank 0 logs: the
caller decides that. :func:`plot_run` turns the file into PNGs; :func:`write_summary` writes
``summary.json``.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from vidgrid.errors import ConfigError
from vidgrid.types import ClipShape

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_KEYS = ("wall_time_s", "iterations", "epochs", "clips_seen", "skipped_videos")
"""Keys every ``summary.json`` has; accuracies are fractions in 0–1."""


def format_duration(seconds: float) -> str:
    """``3725`` → ``1:02:05``; ``65`` → ``1:05``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """tqdm's bar over optimizer steps with the loss, LR, throughput and clip shape as its postfix.

    On a terminal the bar rewrites one line; otherwise (log files, CI) its text is printed as a plain
    line every ``interval_s`` seconds and at the last step. The ETA assumes a roughly constant time
    per iteration, which multigrid keeps true by scaling the batch with the shape (paper Eq. 1)."""

    def __init__(
        self,
        total_iterations: int,
        *,
        epochs: int,
        start_iteration: int = 0,
        stream: TextIO | None = None,
        interval_s: float = 10.0,
    ) -> None:
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval_s = interval_s
        self.last_print = -math.inf
        self.bar = tqdm(
            total=total_iterations, initial=start_iteration, unit="it", dynamic_ncols=True, leave=True,
            file=self.stream if self.tty else io.StringIO(), ascii=not self.tty, mininterval=0.2,
        )

    def update(
        self, iteration: int, *, epoch: int, loss: float, lr: float, clips_per_s: float, batch: int, shape: ClipShape
    ) -> None:
        """Report that ``iteration`` optimizer steps are done (printing is rate-limited)."""
        self.bar.set_description_str(f"ep {epoch}/{self.epochs}", refresh=False)
        self.bar.set_postfix_str(f"loss {loss:.4f} | lr {lr:.3g} | {clips_per_s:.1f} clips/s | {batch}×{shape}", refresh=False)
        self.bar.update(iteration - self.bar.n)
        now = time.perf_counter()
        if not self.tty and (now - self.last_print >= self.interval_s or iteration >= self.bar.total):
            self.last_print = now
            self.stream.write(str(self.bar) + "\n")
            self.stream.flush()

    def write(self, text: str) -> None:
        """Print a message on its own line (e.g. the validation result) without breaking the bar."""
        if self.tty:
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        self.bar.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a torn last line from a crash is ignored)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLogger:
    """Appends records to ``out_dir/metrics.jsonl`` and to the ``loggers``: TensorBoard (``out_dir/tb``)
    and Weights & Biases (``out_dir/wandb``, one W&B run per run folder, continued on resume).

    ``resume_iteration``: the run restarts from a checkpoint at that iteration; records logged
    after it (before a crash) are dropped and the wall clock continues from the last kept record.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        loggers: Sequence[str] = ("tensorboard",),
        config: dict[str, Any] | None = None,
        resume_iteration: int | None = None,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / METRICS_FILE
        self.wall_offset_s = 0.0
        if resume_iteration is None:
            self.path.write_text("")
        else:
            kept = [r for r in read_metrics(self.path) if r.get("iteration", 0) <= resume_iteration]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
            self.wall_offset_s = max((float(r.get("wall_s", 0.0)) for r in kept), default=0.0)
        self.file = self.path.open("a")
        self.start = time.perf_counter()
        self.writer = None
        self.wandb_run = start_wandb(out_dir, config or {}) if "wandb" in loggers else None
        if "tensorboard" in loggers:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when used

            # events after the checkpoint's iteration were logged before a crash: TensorBoard drops them
            purge = None if resume_iteration is None else resume_iteration + 1
            self.writer = SummaryWriter(log_dir=str(out_dir / "tb"), purge_step=purge)

    @property
    def wall_s(self) -> float:
        """Training wall time so far, including the time before a resume."""
        return self.wall_offset_s + time.perf_counter() - self.start

    def log(self, split: str, *, iteration: int, epoch: float, **values: float | int | str) -> dict[str, Any]:
        """Write one record; numbers also go to TensorBoard as ``<split>/<key>``. Returns the record."""
        record: dict[str, Any] = {"split": split, "iteration": iteration, "epoch": epoch, "wall_s": round(self.wall_s, 3)}
        record.update(values)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        scalars = {
            f"{split}/{key}": value for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        }
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, value, iteration)
        if self.wandb_run is not None and scalars:
            self.wandb_run.log(scalars, step=iteration)
        return record

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_wandb(out_dir: Path, config: dict[str, Any]) -> Any:
    """A Weights & Biases run logging into ``out_dir/wandb``: offline unless ``WANDB_MODE`` or an API
    key says otherwise (``wandb sync out_dir/wandb/offline-run-*`` uploads it later). Its id is kept in
    ``out_dir/wandb_id.txt`` so a resumed training continues the same W&B run."""
    try:
        import wandb
    except ImportError:
        raise ConfigError("train.loggers includes wandb, which needs the extra: pip install 'vidgrid[wandb]'") from None
    id_file = out_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
    id_file.write_text(run_id + "\n")
    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    return wandb.init(
        project=os.environ.get("WANDB_PROJECT", "vidgrid"), name=out_dir.name, id=run_id, resume="allow",
        dir=str(out_dir), config=config, mode=mode,
    )


def series(records: list[dict[str, Any]], split: str, key: str) -> tuple[list[float], list[float], list[float]]:
    """(iterations, wall seconds, values) of ``key`` in the ``split`` records that have it."""
    rows = [r for r in records if r.get("split") == split and isinstance(r.get(key), (int, float))]
    return [r["iteration"] for r in rows], [r.get("wall_s", 0.0) for r in rows], [float(r[key]) for r in rows]


def plot_pair(path: Path, title: str, ylabel: str, curves: list[tuple[str, list, list, list]], *, log_y: bool = False) -> None:
    """Two panels, the same curves against iteration (left) and wall time (right)."""
    from matplotlib.figure import Figure

    longest = max((max(c[2], default=0.0) for c in curves), default=0.0)
    unit, scale = ("min", 60.0) if longest > 600 else ("s", 1.0)
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, xlabel in ((axes[0], "iteration"), (axes[1], f"wall time ({unit})")):
        for label, iters, walls, values in curves:
            x = iters if xlabel == "iteration" else [w / scale for w in walls]
            ax.plot(x, values, label=label, marker="o" if len(values) < 30 else None)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if log_y:
            ax.set_yscale("log")
        if len(curves) > 1:
            ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=100)


def running_mean(values: list[float], window: int) -> list[float]:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def metric_groups(metrics: Sequence[str]) -> dict[str, list[str]]:
    """Metrics by the dataset their name starts with (``kinetics/top1``); unprefixed ones under ``""``."""
    groups: dict[str, list[str]] = {}
    for key in metrics:
        group = key.split("/", 1)[0] if "/" in key else ""
        groups.setdefault(group, []).append(key)
    return groups


def plot_run(out_dir: Path, metrics: Sequence[str]) -> list[Path]:
    """PNGs of loss, the validation ``metrics`` (fractions, plotted in %) and LR against iteration and
    wall time from ``out_dir/metrics.jsonl``: ``loss.png``, ``accuracy.png`` and ``lr.png`` (each only
    when the file has such values); metrics named ``<dataset>/<metric>`` go to ``accuracy_<dataset>.png``."""
    records = read_metrics(out_dir / METRICS_FILE)
    written = []
    train_loss = series(records, "train", "loss")
    loss = [("train", *train_loss), ("val", *series(records, "val", "loss"))]
    if len(train_loss[2]) >= 50:  # noisy: add a running mean over 2% of the points
        loss.append(("train (running mean)", train_loss[0], train_loss[1], running_mean(train_loss[2], len(train_loss[2]) // 50)))
    loss = [c for c in loss if c[3]]
    if loss:
        low, high = min(min(c[3]) for c in loss), max(max(c[3]) for c in loss)
        plot_pair(out_dir / "loss.png", "loss", "loss", loss, log_y=low > 0 and high / low > 20)
        written.append(out_dir / "loss.png")
    for group, keys in metric_groups(metrics).items():
        acc = [(key.split("/", 1)[-1], *series(records, "val", key)) for key in keys]
        acc = [(name, it, wall, [100 * v for v in vals]) for name, it, wall, vals in acc if vals]
        if acc:
            path = out_dir / (f"accuracy_{group}.png" if group else "accuracy.png")
            plot_pair(path, f"validation accuracy: {group}" if group else "validation accuracy", "%", acc)
            written.append(path)
    lr = series(records, "train", "lr")
    if lr[2]:
        plot_pair(out_dir / "lr.png", "learning rate", "lr", [("lr", *lr)])
        written.append(out_dir / "lr.png")
    return written


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    """Write ``out_dir/summary.json`` (atomically); it must hold every key of :data:`SUMMARY_KEYS`."""
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ValueError(f"summary lacks {', '.join(missing)}")
    path = out_dir / SUMMARY_FILE
    atomic_write_text(path, json.dumps(summary, indent=2, default=str) + "\n")
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``: a reader (or a
    resumed run) sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def format_summary(summary: dict[str, Any], *, headline: str) -> str:
    """``headline`` (the task's metrics, e.g. ``top-1 93.8% · top-5 100.0%``) then ``1,234 iterations ·
    15 epochs · 2:13 wall`` for the terminal."""
    parts = [headline]
    parts += [
        f"{summary['iterations']:,} iterations",
        f"{summary['epochs']} epochs",
        f"{format_duration(summary['wall_time_s'])} wall",
    ]
    skipped = summary["skipped_videos"]
    count = len(skipped) if isinstance(skipped, (list, tuple)) else int(skipped)
    if count:
        parts.append(f"{count} unreadable videos skipped")
    return " · ".join(parts)
