"""``vidgrid data check``: open every video of a dataset in parallel and report the broken ones.

A video is *missing*, *zero-length*, *undecodable* (no readable container or stream, or its first or
last frame does not decode) or *too-short* (fewer frames than ``--min-frames``). The summary gives
the count, total duration, frame rates and a resolution histogram; ``--write-clean`` writes the list
without the bad videos.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vidgrid.data.annotations import Annotations, load_annotations, write_annotations
from vidgrid.data.decode import DecodeError, VideoInfo, decode_frames, probe_video

PROBLEMS = ("missing", "zero-length", "undecodable", "too-short")
"""Problem kinds, in report order."""


@dataclass(frozen=True)
class VideoReport:
    """The outcome of checking one video: ``problem`` is ``None`` for a good one."""

    path: Path
    info: VideoInfo | None
    problem: str | None = None
    reason: str = ""


def _problem_of(error: DecodeError) -> str:
    """The problem kind of a decoding failure."""
    if error.reason == "missing file":
        return "missing"
    if error.reason == "zero-length file":
        return "zero-length"
    return "undecodable"


def check_video(path: Path, min_frames: int = 1) -> VideoReport:
    """Probe one video and decode its first and last frames (single-threaded: runs in a worker pool)."""
    try:
        info = probe_video(path)
        if info.num_frames < min_frames:
            return VideoReport(path, info, "too-short", f"{info.num_frames} frames, fewer than {min_frames}")
        decode_frames(path, [0, info.num_frames - 1], threads=1)
    except DecodeError as e:
        return VideoReport(path, None, _problem_of(e), e.reason)
    except Exception as e:  # noqa: BLE001 - a checker reports every failure instead of dying on one
        return VideoReport(path, None, "undecodable", f"{type(e).__name__}: {e}")
    return VideoReport(path, info)


def _check_star(args: tuple[Path, int]) -> VideoReport:
    return check_video(*args)


def check_videos(paths: list[Path], *, min_frames: int = 1, workers: int | None = None, progress: bool = False) -> list[VideoReport]:
    """:func:`check_video` for each path (in order), in ``workers`` processes (default: all cores);
    ``progress`` prints a line to stderr every 5% of a large dataset."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    jobs = [(path, min_frames) for path in paths]
    step = max(100, len(jobs) // 20)
    reports: list[VideoReport] = []
    with contextlib.ExitStack() as stack:
        if workers == 1:
            results = map(_check_star, jobs)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(workers))
            results = pool.map(_check_star, jobs, chunksize=max(1, min(64, len(jobs) // (8 * workers))))
        for report in results:
            reports.append(report)
            if progress and len(reports) % step == 0:
                bad = sum(r.problem is not None for r in reports)
                print(f"[{len(reports)}/{len(jobs)}] checked, {bad} with problems", file=sys.stderr)
    return reports


def summarize(reports: list[VideoReport]) -> dict:
    """Counts, total duration, frame rates and resolutions of the good videos, and every problem."""
    good = [r.info for r in reports if r.info is not None and r.problem is None]
    frames = sorted(info.num_frames for info in good)
    return {
        "videos": len(reports),
        "ok": len(good),
        "problems": {kind: sum(r.problem == kind for r in reports) for kind in PROBLEMS},
        "duration_s": round(sum(info.duration for info in good), 3),
        "frames": {"min": frames[0], "median": frames[len(frames) // 2], "max": frames[-1]} if frames else {},
        "fps": dict(Counter(f"{info.fps:g}" for info in good).most_common()),
        "resolutions": dict(Counter(f"{info.width}x{info.height}" for info in good).most_common()),
        "bad": [{"path": str(r.path), "problem": r.problem, "reason": r.reason} for r in reports if r.problem],
    }


def format_summary(summary: dict) -> str:
    """The human-readable report printed by ``vidgrid data check``."""
    lines = [f"{bad['problem']:<12} {bad['path']}: {bad['reason']}" for bad in summary["bad"]]
    problems = ", ".join(f"{count} {kind}" for kind, count in summary["problems"].items() if count) or "no problems"
    hours = summary["duration_s"] / 3600
    lines.append(f"{summary['videos']} videos: {summary['ok']} ok, {problems}")
    lines.append(f"duration: {summary['duration_s']:.1f} s ({hours:.2f} h)")
    if summary["frames"]:
        lines.append("frames: min {min}, median {median}, max {max}".format(**summary["frames"]))
    for title, key in (("fps", "fps"), ("resolution", "resolutions")):
        histogram = summary[key]
        shown = ", ".join(f"{value} ×{count}" for value, count in list(histogram.items())[:10])
        more = f", ... ({len(histogram) - 10} more)" if len(histogram) > 10 else ""
        lines.append(f"{title}: {shown}{more}")
    return "\n".join(lines)


def check_command(
    source: str | Path,
    *,
    root: str | Path | None,
    workers: int | None,
    min_frames: int,
    write_clean: str | Path | None,
    as_json: bool,
) -> int:
    """``vidgrid data check``: exit code 0 when every video is fine, 1 when some are not."""
    annotations = load_annotations(source, root=root)
    paths = list(dict.fromkeys(sample.path for sample in annotations.samples))  # unique, in list order
    reports = check_videos(paths, min_frames=min_frames, workers=workers, progress=True)
    summary = summarize(reports)
    if write_clean:
        bad = {r.path for r in reports if r.problem}
        clean = [sample for sample in annotations.samples if sample.path not in bad]
        write_annotations(write_clean, Annotations(clean, annotations.classes, annotations.multi_label, annotations.meta))
        summary["clean_list"] = str(write_clean)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if write_clean:
            print(f"wrote {len(clean)} of {len(annotations.samples)} samples to {write_clean}", file=sys.stderr)
    return 1 if summary["bad"] else 0
