"""``vidgrid predict``: the top classes of some videos (or of every video in some folders) under a
trained checkpoint; with ``--window S`` a timeline of each long video.

Each video (each window) is scored like the validation set was: the checkpoint's own recipe decides
the test views (``eval.clips`` temporal clips × ``eval.crops`` crops of ``data.frames`` × ``eval.crop``²)
and its task aggregates them and describes the result (:mod:`vidgrid.engine.evaluate`,
:mod:`vidgrid.tasks`, :mod:`vidgrid.engine.timeline`). A progress bar runs over the videos on a
terminal; the throughput (videos/s, windows/s) is printed at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from vidgrid.config import Config
from vidgrid.data.annotations import VIDEO_EXTENSIONS, Annotations, Sample
from vidgrid.data.dataset import VideoTestDataset, sample_name
from vidgrid.data.decode import DecodeError, probe_video
from vidgrid.data.formats.ava import keyframes_of_videos
from vidgrid.engine.distributed import pick_device
from vidgrid.engine.evaluate import eval_dataset_from_config, score_views
from vidgrid.engine.timeline import score_windows, write_timeline
from vidgrid.engine.weights import load_weights, model_from_weights
from vidgrid.errors import DataError, VidgridError
from vidgrid.tasks import Task


def collect_videos(paths: Sequence[Path]) -> list[Path]:
    """The videos named, each folder replaced by the videos under it (recursively, by extension,
    sorted); a folder without videos is a one-line error."""
    videos = []
    for path in paths:
        if not path.is_dir():
            videos.append(path)
            continue
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not found:
            raise DataError(f"{path}: no videos in this folder (extensions {', '.join(sorted(VIDEO_EXTENSIONS))})")
        videos.extend(found)
    return videos


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be used as a video, or None if it opens."""
    if not path.is_file():
        return "file not found"
    try:
        probe_video(path)
    except DecodeError as e:
        return e.reason
    return None


@torch.inference_mode()
def predict_videos(
    model: nn.Module,
    videos: Sequence[Path],
    task: Task,
    *,
    cfg: Config,
    device: torch.device,
    top: int,
    windows: tuple[float, float] | None = None,
    figures: Path | None = None,
) -> list[dict]:
    """One result per video, in order: ``{"video", **task.prediction}`` (classification: ``"top":
    [{"class", "index", "score"}, ...]`` best first), with ``windows = (window_s, stride_s)`` a
    timeline (:func:`_timeline`), or ``{"video", "error"}`` for a video that is missing or cannot be
    decoded. With ``figures``, the task's picture of each prediction goes there as ``<video
    stem>.png`` (the sibling task: the centre frame with the box), named in ``"figure"``."""
    model.eval().to(device)
    results: dict[Path, dict] = {}
    readable = []
    for path in videos:
        reason = _unreadable(path)
        if reason is None:
            readable.append(path)
        else:
            results[path] = {"video": str(path), "error": reason}
    if readable:
        # the label is never read: no target exists, but the dataset yields one per video
        dataset = eval_dataset_from_config(cfg, Annotations([Sample(p, 0) for p in readable], task.classes), task)
        for i, path in enumerate(tqdm(readable, desc="videos", unit="video", disable=None, leave=False)):
            if windows is not None:
                results[path] = _timeline(model, dataset, path, task, windows, cfg=cfg, device=device, top=top)
                continue
            views, target, index = dataset[i]
            if index < 0:
                results[path] = {"video": str(path), "error": dict(dataset.skipped()).get(str(path), "cannot decode")}
                continue
            scores = score_views(model, views.unsqueeze(0).to(device), task, mean=cfg.data.mean, std=cfg.data.std,
                                 targets=target.unsqueeze(0))[0]
            results[path] = {"video": str(path), **task.prediction(scores, top=top)}  # (1, V, C, T, H, W) -> (K,)
            figure = task.prediction_figure(figures / f"{path.stem}.png", path, scores, target) if figures else None
            if figure is not None:
                results[path]["figure"] = str(figure)
    return [results[p] for p in videos]


@torch.inference_mode()
def predict_keyframes(model: nn.Module, videos: Sequence[Path], boxes: Path, task: Task, *, cfg: Config,
                      device: torch.device, top: int, figures: Path | None = None) -> list[dict]:
    """``--boxes``: per video ``{"video", "keyframes": [{"time", **task.prediction}, ...]}`` (detection:
    each box's ``top`` actions), or ``{"video", "error"}``; with ``figures`` each keyframe's picture
    as ``<video stem>_<time>s.png``, named in its ``"figure"``."""
    model.eval().to(device)
    samples = keyframes_of_videos(videos, boxes)
    dataset = eval_dataset_from_config(cfg, Annotations(samples, task.classes), task)
    results = {path: {"video": str(path), "keyframes": []} for path in videos}
    for i, sample in enumerate(tqdm(samples, desc="keyframes", unit="keyframe", disable=None, leave=False)):
        views, target, index = dataset[i]
        entry = results[sample.path]
        if index < 0:
            entry.update(error=dict(dataset.skipped()).get(sample_name(sample), "cannot decode"))
            continue
        scores = score_views(model, views.unsqueeze(0).to(device), task, mean=cfg.data.mean, std=cfg.data.std,
                             targets=target.unsqueeze(0))[0]
        keyframe = {"time": sample.keyframe.time_s, **task.prediction(scores, top=top)}
        if figures is not None:
            name = f"{sample.path.stem}_{sample.keyframe.time_s:g}s.png"
            keyframe["figure"] = str(task.prediction_figure(figures / name, sample.path, scores, target))
        entry["keyframes"].append(keyframe)
    return [results[p] for p in videos]


def _timeline(model: nn.Module, dataset: VideoTestDataset, path: Path, task: Task, windows: tuple[float, float], *,
              cfg: Config, device: torch.device, top: int) -> dict:
    """``{"video", "fps", "frames", "duration_s", "window_s", "stride_s", "views", "windows": [...]}``."""
    info = probe_video(path)
    try:
        rows = score_windows(model, dataset, info, task, window_s=windows[0], stride_s=windows[1], cfg=cfg,
                             device=device, top=top)
    except DecodeError as e:
        return {"video": str(path), "error": e.reason}
    return {"video": str(path), "fps": info.fps, "frames": info.num_frames, "duration_s": round(info.duration, 3),
            "window_s": windows[0], "stride_s": windows[1], "views": dataset.num_views, "windows": rows}


def format_predictions(results: list[dict], task: Task) -> str:
    """A table per video (classification: rank, class name and score in percent); a timeline's top
    class per window."""
    lines = []
    for r in results:
        if "error" in r:
            continue
        if "keyframes" in r:
            for keyframe in r["keyframes"]:
                lines += [f"{r['video']} at {keyframe['time']:g} s", *task.format_prediction(keyframe)]
            continue
        if "windows" not in r:
            lines += [r["video"], *task.format_prediction(r)]
            continue
        lines.append(f"{r['video']}: {len(r['windows'])} windows -> {r['files'][0]}")
        lines += [f"  {w['start']:8.2f}-{w['end']:8.2f} s  {w['top'][0]['class']}  {100 * w['top'][0]['score']:5.1f}%"
                  for w in r["windows"]]
    return "\n".join(lines)


def predict_command(
    paths: list[Path], checkpoint: Path, *, top: int, as_json: bool,
    window: float | None = None, stride: float | None = None, out: Path | None = None,
    figures: Path | None = None, boxes: Path | None = None, heads: Sequence[str] = (),
) -> int:
    """Print the ``top`` classes of each video (of the task's ``heads`` only, when named: a
    multi-dataset model's label spaces; default every head), folders searched recursively (a table, or one JSON
    object with ``--json``); with ``window`` (seconds) a timeline of windows every ``stride`` seconds
    (default: ``window``, no overlap) per video, written to ``out`` (default ``timelines/``).

    A missing or undecodable video is an ``error: PATH: reason`` line on stderr; the others are still
    predicted and the exit code is 2."""
    if top < 1:
        raise VidgridError(f"--top {top}: expected an integer >= 1")
    windows = windowing(window, stride)
    videos = collect_videos(paths)
    weights = load_weights(checkpoint)
    model, task, cfg = model_from_weights(weights)
    if task.box_inputs != (boxes is not None):
        raise VidgridError(f"--boxes CSV: the {task.name} task of {checkpoint} classifies given person boxes; name them"
                           if task.box_inputs else f"--boxes: the {task.name} task of {checkpoint} takes no boxes")
    task = task.for_heads(heads)
    start = time.perf_counter()
    if boxes is not None:
        results = predict_keyframes(model, videos, boxes, task, cfg=cfg, device=pick_device("auto", 0), top=top, figures=figures)
    else:
        results = predict_videos(model, videos, task, cfg=cfg, device=pick_device("auto", 0), top=top, windows=windows,
                                 figures=figures)
    seconds = time.perf_counter() - start
    timelines = [r for r in results if "windows" in r]
    out_dir = out if out is not None else Path("timelines")
    for name, r in zip(unique_names([Path(r["video"]) for r in timelines]), timelines):
        r["files"] = [str(p) for p in write_timeline(out_dir, name, r)]
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"error: {r['video']}: {r['error']}", file=sys.stderr)
    if as_json:
        print(json.dumps({"checkpoint": str(checkpoint), "model": weights.model_name, "predictions": results}, indent=2))
    elif len(failed) < len(results):
        print(format_predictions(results, task))
        for r in results:
            for figure in [r.get("figure")] + [k.get("figure") for k in r.get("keyframes", [])]:
                if figure:
                    print(f"written: {figure}")
    print(throughput_line(len(results) - len(failed), sum(len(r["windows"]) for r in timelines), seconds), file=sys.stderr)
    return 2 if failed else 0


def windowing(window: float | None, stride: float | None) -> tuple[float, float] | None:
    """``(window_s, stride_s)`` of sliding-window prediction (stride defaults to the window), or None."""
    if stride is not None and window is None:
        raise VidgridError("--stride: sliding windows need --window SECONDS too")
    return None if window is None else (window, stride if stride is not None else window)


def throughput_line(videos: int, windows: int, seconds: float) -> str:
    """``N videos in T s: X videos/s`` (and windows/s when windows were scored)."""
    seconds = max(seconds, 1e-9)
    line = f"{videos} video{'' if videos == 1 else 's'} in {seconds:.1f} s: {videos / seconds:.2f} videos/s"
    return f"{line}, {windows} windows: {windows / seconds:.2f} windows/s" if windows else line


def unique_names(videos: list[Path]) -> list[str]:
    """A file name per video: its stem, then ``stem-2``, ``stem-3`` ... for stems already taken."""
    names: list[str] = []
    for video in videos:
        name, k = video.stem, 1
        while name in names:
            k += 1
            name = f"{video.stem}-{k}"
        names.append(name)
    return names
