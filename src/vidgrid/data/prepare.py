"""``vidgrid data prepare``: re-encode a dataset for fast random clip access.

A random training clip costs its span plus the distance back to the previous key frame; x264's
default key-frame interval of 250 frames makes a 32-frame clip decode ~150 frames it never uses.
Re-encoding with a short interval (16 frames), a smaller short side (320 px) and x264's
``fastdecode`` tuning removes most of that cost. Outputs are constant-frame-rate H.264 MP4 at the
source's average rate; sources are never upscaled. The run is resumable: each video is written to a hidden temporary file and renamed when
complete, so an existing output is always a finished one and is skipped.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from vidgrid.data.annotations import Annotations, Sample, load_annotations, write_annotations
from vidgrid.data.decode import DecodeError, iter_frames, probe_video
from vidgrid.data.encode import VideoWriter
from vidgrid.errors import DataError


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side scaled down to ``short_side`` (never up), both even."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def output_path(video: Path, base: Path, dst: Path) -> Path:
    """Where ``video`` goes under ``dst``: its path relative to the data root, as ``.mp4``.

    Videos outside the data root keep their absolute path below ``dst/external``.
    """
    try:
        relative = video.relative_to(base)
    except ValueError:
        relative = Path("external", *video.resolve().parts[1:])
    return (dst / relative).with_suffix(".mp4")


def transcode(src: Path, dst: Path, *, short_side: int, keyint: int, threads: int = 0) -> None:
    """Re-encode ``src`` to ``dst`` (short side <= ``short_side``, a key frame every ``keyint`` frames,
    tuned for fast decoding).

    Writes ``dst`` atomically (temporary file, then rename); raises :class:`DecodeError` for an
    unreadable source and leaves nothing behind.
    """
    info = probe_video(src)
    width, height = output_size(info.width, info.height, short_side)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    written = 0
    try:
        with VideoWriter(tmp, width, height, info.fps, keyint=keyint, fast_decode=True, threads=threads) as writer:
            for frame in iter_frames(src, threads=threads):
                writer.write(frame)
                written += 1
        if written == 0:
            raise DecodeError(src, "no frame decodes")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dst)


def _transcode_job(src: Path, dst: Path, short_side: int, keyint: int, threads: int) -> str | None:
    """Run :func:`transcode` in a worker; the failure reason, or ``None`` on success."""
    try:
        transcode(src, dst, short_side=short_side, keyint=keyint, threads=threads)
    except DecodeError as e:
        return e.reason
    except Exception as e:  # noqa: BLE001 - one bad input must not stop the whole dataset
        return f"{type(e).__name__}: {e}"
    return None


def _list_name(src: Path) -> str:
    """Name of the new annotation list: the source's for ``.txt``/``.csv`` lists, else ``<stem>.txt``."""
    if src.is_dir():
        return "videos.txt"
    return src.name if src.suffix.lower() in (".txt", ".csv") else f"{src.stem}.txt"


def _plan(annotations: Annotations, base: Path, dst: Path) -> dict[Path, Path]:
    """Source video -> output video, refusing two sources that would share an output."""
    plan: dict[Path, Path] = {}
    owner: dict[Path, Path] = {}
    for sample in annotations.samples:
        out = output_path(sample.path, base, dst)
        if owner.setdefault(out, sample.path) != sample.path:
            raise DataError(f"{sample.path} and {owner[out]} would both be written to {out}; rename one of them")
        plan[sample.path] = out
    return plan


def prepare_command(
    src: str | Path,
    dst: Path,
    *,
    root: str | Path | None,
    short_side: int,
    keyint: int,
    workers: int | None,
) -> int:
    """``vidgrid data prepare``: exit code 0 when every video was prepared, 1 when some were unreadable."""
    src, dst = Path(src), Path(dst)
    if short_side < 2 or keyint < 1:
        raise DataError(f"--short-side must be >= 2 and --keyint >= 1, got {short_side} and {keyint}")
    annotations = load_annotations(src, root=root)
    base = Path(root) if root else (src if src.is_dir() else src.parent)
    plan = _plan(annotations, base, dst)
    todo = {video: out for video, out in plan.items() if not out.is_file()}
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    threads = 1 if workers > 1 else 0
    print(f"{len(plan)} videos, {len(plan) - len(todo)} already prepared, {len(todo)} to encode "
          f"(short side {short_side}, key frame every {keyint}, {workers} processes)", file=sys.stderr)
    failed: dict[Path, str] = {}
    with ProcessPoolExecutor(workers) as pool:
        futures = {pool.submit(_transcode_job, video, out, short_side, keyint, threads): video for video, out in todo.items()}
        step = max(10, len(futures) // 20)
        for done, future in enumerate(as_completed(futures), 1):
            reason = future.result()
            if reason is not None:
                failed[futures[future]] = reason
            if done % step == 0:
                print(f"[{done}/{len(futures)}] encoded, {len(failed)} unreadable", file=sys.stderr)
    kept = [
        Sample(plan[sample.path], sample.label, sample.labels, sample.segments)
        for sample in annotations.samples
        if sample.path not in failed
    ]
    if not kept:
        raise DataError(f"{src}: no video could be prepared (first failure: {next(iter(failed.values()))})")
    new_list = dst / _list_name(src)
    write_annotations(new_list, Annotations(kept, annotations.classes, annotations.multi_label, annotations.meta))
    for video, reason in failed.items():
        print(f"unreadable   {video}: {reason}")
    print(f"prepared {len(plan) - len(failed)} of {len(plan)} videos into {dst}; list: {new_list}"
          + (f"; {len(failed)} unreadable (left out of the list)" if failed else ""))
    return 1 if failed else 0
