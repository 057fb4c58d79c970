"""Sliding-window prediction over a long video: what happens when.

A window of ``window_s`` seconds every ``stride_s`` seconds is scored as if it were a whole test video
(the recipe's ``eval.clips`` × ``eval.crops`` views inside the window, aggregated by the task), and
the windows form a timeline: ``<name>.timeline.json`` (start, end in seconds and the top classes with
their scores), the same as ``<name>.timeline.csv`` (one row per window and rank) and
``<name>.timeline.png`` (the scores of the classes that lead some window, over time).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidgrid.config import Config
from vidgrid.data.dataset import VideoTestDataset
from vidgrid.data.decode import VideoInfo
from vidgrid.data.sampling import window_starts
from vidgrid.engine.evaluate import score_views
from vidgrid.errors import VidgridError
from vidgrid.tasks import Task

WINDOWS_PER_FORWARD = 8
"""Windows scored together (their views share the model's forward passes)."""
MAX_PLOTTED_CLASSES = 10


def window_frames(fps: float, window_s: float, stride_s: float) -> tuple[int, int]:
    """(window, stride) in frames of a ``fps`` video; each at least one frame."""
    if not window_s > 0 or not stride_s > 0:
        raise VidgridError(f"--window {window_s} --stride {stride_s}: expected seconds > 0")
    return max(1, round(window_s * fps)), max(1, round(stride_s * fps))


@torch.inference_mode()
def score_windows(
    model: nn.Module, dataset: VideoTestDataset, info: VideoInfo, task: Task, *,
    window_s: float, stride_s: float, cfg: Config, device: torch.device, top: int,
) -> list[dict[str, Any]]:
    """``{"start", "end", **task.prediction}`` per window of the video ``info`` (times in seconds)."""
    window, stride = window_frames(info.fps, window_s, stride_s)
    bounds = [(s, min(s + window, info.num_frames)) for s in window_starts(info.num_frames, window, stride)]
    rows = []
    for k in range(0, len(bounds), WINDOWS_PER_FORWARD):
        group = bounds[k:k + WINDOWS_PER_FORWARD]
        views = torch.stack([dataset.window_views(info.path, a, b) for a, b in group])  # (W, V, C, T, s, s)
        scores = score_views(model, views.to(device), task, mean=cfg.data.mean, std=cfg.data.std)
        for (a, b), window_scores in zip(group, scores):
            rows.append({"start": round(a / info.fps, 3), "end": round(b / info.fps, 3),
                         **task.prediction(window_scores, top=top)})
    return rows


def write_timeline(out_dir: Path, name: str, doc: dict[str, Any]) -> list[Path]:
    """``name.timeline.json``, ``.csv`` and ``.png`` of ``doc`` (``{"video", ..., "windows": [...]}``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"{name}.timeline"
    json_path, csv_path, png_path = (base.with_name(f"{base.name}.{ext}") for ext in ("json", "csv", "png"))
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["start", "end", "rank", "class", "score"])
        for w in doc["windows"]:
            for rank, entry in enumerate(w["top"], 1):
                writer.writerow([w["start"], w["end"], rank, entry["class"], f"{entry['score']:.6f}"])
    plot_timeline(png_path, doc["windows"], title=f"{Path(doc['video']).name}: {len(doc['windows'])} windows "
                                                   f"of {doc['window_s']:g} s every {doc['stride_s']:g} s")
    return [json_path, csv_path, png_path]


def leading_classes(windows: list[dict[str, Any]], limit: int = MAX_PLOTTED_CLASSES) -> list[str]:
    """The classes ranked first in some window, most windows first (at most ``limit``)."""
    counts: dict[str, int] = {}
    for w in windows:
        counts[w["top"][0]["class"]] = counts.get(w["top"][0]["class"], 0) + 1
    return sorted(counts, key=lambda c: -counts[c])[:limit]


def plot_timeline(path: Path, windows: list[dict[str, Any]], *, title: str) -> Path:
    """The score of each leading class at each window's centre (a gap where it left the top-k), above
    a strip coloured by the top class of each window (a stride-wide cell around its centre)."""
    from matplotlib.figure import Figure

    classes = leading_classes(windows)
    colours = {c: f"C{i}" for i, c in enumerate(classes)}
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    scores_ax, strip_ax = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
    centres = [(w["start"] + w["end"]) / 2 for w in windows]
    for c in classes:
        scores = [next((e["score"] for e in w["top"] if e["class"] == c), math.nan) for w in windows]
        scores_ax.plot(centres, scores, marker=".", color=colours[c], label=c)
    scores_ax.set_ylabel("score")
    scores_ax.set_ylim(0, 1.02)
    scores_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    scores_ax.set_title(title)
    half = (windows[1]["start"] - windows[0]["start"] if len(windows) > 1 else windows[0]["end"] - windows[0]["start"]) / 2
    for centre, w in zip(centres, windows):  # one cell per window around its centre: overlapping windows do not blend
        strip_ax.axvspan(centre - half, centre + half, color=colours.get(w["top"][0]["class"], "lightgrey"), lw=0)
    strip_ax.set_yticks([])
    strip_ax.set_ylabel("top-1", rotation=0, ha="right", va="center")
    strip_ax.set_xlabel("time (s)")
    fig.savefig(path, dpi=100)
    return path
