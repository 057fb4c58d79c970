"""The bookkeeping of ``benchmarks/gpu_suite.py``: model FLOPs utilisation, per-section time budgets,
and one results file that is rewritten after every measurement (so a stopped run keeps its figures).

Pure Python (no torch), so that the arithmetic and the partial-save behaviour are tested on CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

PEAK_BF16_FLOPS = 989e12
"""Dense bf16 tensor-core peak of an H100/H200 SXM (NVIDIA's datasheet: 989 TFLOP/s without sparsity).
Every MFU figure, the fp32 variants' too, is against this one peak so that the variants compare."""

TRAIN_FLOPS_PER_FORWARD = 3
"""A training step costs about 3 forward passes (backward: one pass for the input gradient, one for the
weight gradient; Kaplan et al. 2020, §2.1). ``torch.utils.flop_counter`` counts the forward exactly but
ignores ``groups`` in the weight gradient of a grouped convolution (it counts X3D's depthwise 3×3×3
convolutions as dense: 48 instead of about 6 GMACs per X3D-S clip), so the backward is not counted."""


def train_flops_per_clip(forward_macs: float) -> float:
    """FLOPs of one training step per clip from the forward multiply-adds of one clip (2 FLOPs each)."""
    return 2 * forward_macs * TRAIN_FLOPS_PER_FORWARD


def mfu(clips_per_s: float, forward_macs: float, peak_flops: float = PEAK_BF16_FLOPS) -> float:
    """Model FLOPs utilisation: the training step's model FLOPs per second over the peak."""
    if clips_per_s < 0 or forward_macs < 0 or peak_flops <= 0:
        raise ValueError(f"mfu needs clips/s >= 0, MACs >= 0 and a positive peak: {clips_per_s}, {forward_macs}, {peak_flops}")
    return clips_per_s * train_flops_per_clip(forward_macs) / peak_flops


def cheapest_compile_mode(modes: dict[str, dict[str, float]], iterations: int) -> str:
    """The mode with the least total time over a run of ``iterations`` steps: its one-off overhead
    (compilation and recompilation) plus its steady time per step. ``modes`` maps a name to
    ``{"overhead_s": ..., "steady_s_per_iter": ...}``."""
    if not modes:
        raise ValueError("no compile modes were measured")

    def total(name: str) -> float:
        m = modes[name]
        return m["overhead_s"] + m["steady_s_per_iter"] * iterations

    return min(modes, key=total)


@dataclass
class Budget:
    """Wall-clock seconds a section may spend; ``left()`` is what remains, ``spent()`` is true when the
    next measurement should not start (``reserve`` seconds are kept for the measurement itself)."""

    seconds: float
    clock: Callable[[], float] = time.perf_counter
    start: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.clock()

    def left(self) -> float:
        return self.seconds - (self.clock() - self.start)

    def spent(self, reserve: float = 0.0) -> bool:
        return self.left() <= reserve


class TimeLimit(Exception):
    """A measurement ran past the seconds it was given."""


@dataclass
class Alarm:
    """Whether :func:`time_limit`'s alarm went off: code under test may catch :class:`TimeLimit` and
    raise its own error instead (Dynamo wraps it in a ``TorchRuntimeError``), so the caller asks this."""

    seconds: float
    fired: bool = False

    def error(self) -> str:
        return f"TimeLimit: stopped after {self.seconds:.1f} s"


@contextlib.contextmanager
def time_limit(alarm: Alarm) -> Iterator[None]:
    """Raise :class:`TimeLimit` in the block after ``alarm.seconds`` (SIGALRM; main thread only). A section's
    budget is checked between measurements only, so one long measurement (a torch.compile of X3D-S took
    2 minutes on an H200; one with dynamic shapes had not finished after 100 s) could otherwise overrun
    the whole run. Python handles the signal between bytecodes, which Dynamo's and Inductor's
    compilation, being Python, reaches often."""
    if alarm.seconds <= 0:
        alarm.fired = True
        raise TimeLimit(alarm.error())

    def stop(signum: int, frame: Any) -> None:
        alarm.fired = True
        raise TimeLimit(alarm.error())

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, alarm.seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def section_budget(planned: dict[str, float], section: str, total_left: float) -> float:
    """Seconds for ``section`` when ``total_left`` remain for it and the sections after it (``planned``
    is in run order): its planned budget, shrunk in proportion when earlier sections overran."""
    names = list(planned)
    later = sum(planned[n] for n in names[names.index(section):])
    return max(0.0, min(planned[section], total_left * planned[section] / later))


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: such floats become null; tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader (or a stop) never sees
    half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Results:
    """Every figure of a run, saved to ``OUT/gpu_suite.json`` and ``OUT/gpu_suite.md`` on each change."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"meta": dict(meta), "sections": {}}
        self.save()

    @property
    def json_path(self) -> Path:
        return self.out / "gpu_suite.json"

    @property
    def table_path(self) -> Path:
        return self.out / "gpu_suite.md"

    def add(self, section: str, row: dict[str, Any]) -> None:
        """Append one measurement to ``section`` and save."""
        self.data.setdefault(section, []).append(row)
        self.save()

    def set(self, section: str, value: Any) -> None:
        """Replace ``section`` (a summary, not a list of rows) and save."""
        self.data[section] = value
        self.save()

    def section_status(self, section: str, status: str, seconds: float) -> None:
        """Record how a section ended (``done``, ``budget``: stopped at its time budget, ``failed: ...``)."""
        self.data["sections"][section] = {"status": status, "seconds": round(seconds, 1)}
        self.save()

    def save(self) -> None:
        write_atomic(self.json_path, json.dumps(_clean(self.data), indent=2) + "\n")
        write_atomic(self.table_path, markdown(self.data))


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(data: dict[str, Any]) -> str:
    """A short markdown summary: the model table, then one line per other figure."""
    meta = data["meta"]
    lines = [f"# gpu_suite: {meta.get('device', '?')}, torch {meta.get('torch', '?')}, {meta.get('started', '')}", ""]
    if meta.get("dry"):
        lines += ["**dry run** (CPU, tiny inputs): the figures rehearse the script and measure nothing.", ""]
    lines += ["| section | status | s |", "| --- | --- | ---: |"]
    lines += [f"| {name} | {s['status']} | {s['seconds']:.0f} |" for name, s in data["sections"].items()]
    if data.get("correctness"):
        lines += ["", "| correctness | losses | loss falls | eval rel. err (bf16 vs fp32) | ok |", "| --- | --- | --- | ---: | --- |"]
        for r in data["correctness"]:
            losses = " ".join(_fmt(v, 3) for v in r.get("losses", []))
            lines.append(f"| {r['model']} | {losses} | {r.get('falls', '-')} | {_fmt(r.get('eval_rel_err'), 4)} | "
                         f"{'yes' if r.get('ok') else 'NO: ' + str(r.get('error', 'check failed'))} |")
    if data.get("models"):
        lines += ["", f"MFU against {meta.get('peak_tflops', '?')} TFLOP/s dense bf16 (training FLOPs = 3 × forward).", "",
                  "| model | source | input | batch | variant | train clips/s | first step s | peak GiB | MFU % |",
                  "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
        for r in data["models"]:
            if "error" in r:
                lines.append(f"| {r['model']} | {r['source']} | | | {r['variant']} | error: {r['error'][:60]} | | | |")
                continue
            lines.append(
                f"| {r['model']} | {r['source']} | {r['input']} | {r['batch']} | {r['variant']} | {_fmt(r['train_clips_per_s'])} "
                f"| {_fmt(r['first_step_s'], 2)} | {_fmt(r['peak_memory_gib'], 2)} | {_fmt(r['mfu_pct'], 2)} |")
    if data.get("multigrid_compile"):
        lines += ["", "| multigrid cycle | mode | recompiles | total s | overhead s | steady ms/iter |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in data["multigrid_compile"]:
            if "error" in r:
                lines.append(f"| {r['cycle']} | {r['mode']} | error: {r['error'][:60]} | | | |")
                continue
            lines.append(f"| {r['cycle']} | {r['mode']} | {r['recompiles']} | {_fmt(r['total_s'], 2)} | "
                         f"{_fmt(r['overhead_s'], 2)} | {_fmt(1000 * r['steady_s_per_iter'], 1)} |")
        for cycle, choice in data.get("multigrid_cheapest", {}).items():
            lines.append(f"\ncheapest for the {cycle} cycle over {choice['iterations']} iterations: **{choice['mode']}**")
    baselines = {r.get("seed"): r["wall_time_s"] for r in data.get("demo", []) if r["run"] == "baseline"}
    for r in data.get("demo", []):
        baseline = baselines.get(r.get("seed"))
        speedup = f", {baseline / r['wall_time_s']:.2f}x the baseline's speed" if baseline and r["run"] != "baseline" else ""
        lines.append(f"\ndemo {r['run']}, seed {r.get('seed')}: {_fmt(r.get('wall_time_s'))} s, {r.get('iterations')} iterations, "
                     f"top-1 {_fmt(100 * r['top1'] if r.get('top1') is not None else None)}%{speedup}")
    for r in data.get("loader", []):
        lines.append(f"\n{r['what']}: {_fmt(r.get('clips_per_s'))} clips/s" + (f" ({r['note']})" if r.get("note") else ""))
    return "\n".join(lines) + "\n"
