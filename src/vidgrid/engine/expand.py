"""``vidgrid expand``: X3D's progressive expansion (X3D paper §3.2; supplement "Expansion details").

From a start point (X2D: every γ = 1, one frame) each step trains one candidate per axis, each grown
until its measured FLOPs are closest to ĉ = 2 × the current model's (:func:`~vidgrid.models.x3d.expand_to_cost`),
and keeps the candidate with the best validation top-1 (ties: fewer FLOPs). Candidates train with the
recipe's data, optimizer and schedule (multigrid too) under the supplement's regularisation
expansion: twice the batch and half the schedule with BatchNorm over 16 clips, the recipe's batch
from step 8, drop-connect 0.1 from step 11 (:class:`~vidgrid.config.sections.ExpandConfig`).

The search folder ``OUT``::

    step_00/start/   step_01/fast/ ... step_01/bottleneck/   step_02/...
        recipe.yaml  the candidate's training recipe      run/  its run folder (vidgrid train)
        result.json  written when it has finished: axis, gammas, params, gflops, top1
    trace.json       {"steps": [{"step", "from", "candidates", "chosen"}]}, rewritten after each step
    expansion.png    top-1 against GFLOPs, every candidate and the chosen path (X3D paper Fig. 2)
    model.yaml       the recipe with the final γ: ``vidgrid train OUT/model.yaml``

``--resume`` reads every ``result.json`` and trains only what is missing (an interrupted candidate
continues from its last checkpoint). "GFLOPs" are multiply-adds, as in the X3D paper.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from queue import Queue
from typing import Any

import torch
import yaml

from vidgrid.config import Config, config_to_dict, load_config, save_config
from vidgrid.config.sections import ExpandConfig
from vidgrid.data.transforms import jitter_range
from vidgrid.engine.build import load_split
from vidgrid.engine.logging import SUMMARY_FILE, atomic_write_text
from vidgrid.errors import ConfigError, ModelError, VidgridError
from vidgrid.models import model_config
from vidgrid.models.x3d import AXES, X3D, X3D_CONFIGS, X3D_GAMMAS, Gammas, clip_gmacs, expand_to_cost, x3d_config

TRACE_FILE = "trace.json"
RESULT_FILE = "result.json"
PLOT_FILE = "expansion.png"
MODEL_FILE = "model.yaml"
START = "start"
"""Axis name of the start point's own training (step 0)."""
_GAMMA_FIELDS = ("width_factor", "depth_factor", "bottleneck_factor", "frames", "crop", "sampling_rate")

TrainFn = Callable[[Path, Path], dict[str, Any]]
"""``train_fn(recipe.yaml, run_dir) -> summary``: trains one candidate."""


@dataclass(frozen=True)
class Candidate:
    """One trained network of the search (an entry of ``trace.json``'s ``candidates``)."""

    axis: str
    gammas: dict[str, float]
    params: int
    gflops: float
    top1: float


# --------------------------------------------------------------------------------------------------
# recipes of the candidates


def start_gammas(cfg: Config) -> Gammas:
    """The start point: ``expand.start`` with ``expand.start_gammas`` replacing factors; a one-frame start
    gets γ_τ = the recipe's clip span (data.frames × data.sampling_rate) unless given."""
    ex = cfg.expand
    if ex.start not in X3D_GAMMAS:
        raise ConfigError(f"'expand.start' = {ex.start!r}: expected one of {', '.join(X3D_GAMMAS)}")
    unknown = sorted(set(ex.start_gammas) - {"tau", "t", "s", "w", "b", "d"})
    if unknown:
        raise ConfigError(f"'expand.start_gammas': unknown factor {unknown[0]!r} (valid: tau, t, s, w, b, d)")
    g = X3D_GAMMAS[ex.start]
    given = {k: int(v) if k == "t" else float(v) for k, v in ex.start_gammas.items()}
    if "tau" not in given and given.get("t", g.t) == 1:
        given["tau"] = float(cfg.data.frames * cfg.data.sampling_rate)
    try:
        return replace(g, **given)
    except VidgridError as e:
        raise ConfigError(f"'expand.start_gammas' = {ex.start_gammas}: {e}") from None


def check_expand(cfg: Config, axes: Sequence[str], steps: int) -> None:
    """One ConfigError line per bad search setting."""
    if cfg.model.name not in X3D_CONFIGS:
        raise ConfigError(f"'model.name' = {cfg.model.name!r}: expand grows an X3D ({', '.join(X3D_CONFIGS)})")
    bad = [a for a in axes if a not in AXES]
    if bad or not axes or len(set(axes)) < len(axes):
        raise ConfigError(f"--axes {' '.join(axes)}: expected some of {', '.join(AXES)}, each once")
    ex = cfg.expand
    checks = [
        (steps >= 1, "expand.steps", steps, "an integer >= 1"),
        (ex.cost_ratio > 1, "expand.cost_ratio", ex.cost_ratio, "a number > 1"),
        (ex.bn_clips >= 1, "expand.bn_clips", ex.bn_clips, "an integer >= 1"),
        (0 <= ex.drop_connect < 1, "expand.drop_connect", ex.drop_connect, "a rate in [0, 1)"),
    ]
    for ok, key, value, expected in checks:
        if not ok:
            raise ConfigError(f"'{key}' = {value!r}: expected {expected}")


def network_recipe(cfg: Config, g: Gammas) -> Config:
    """``cfg`` training the network of ``g``: the model options, clip length, stride and crop (training
    jitter and test crop scaled with it); the recipe's own model options (``se``, ``swish``...) stay."""
    out = copy.deepcopy(cfg)
    net = x3d_config(g)
    out.model.options = {**cfg.model.options, **{k: getattr(net, k) for k in _GAMMA_FIELDS}}
    scale = net.crop / cfg.data.crop
    out.data.frames, out.data.sampling_rate, out.data.crop = net.frames, net.sampling_rate, net.crop
    out.data.min_short, out.data.max_short = jitter_range(net.crop, cfg.data.crop, cfg.data.min_short, cfg.data.max_short)
    out.eval.crop = round(cfg.eval.crop * scale)
    if cfg.eval.short_side:
        out.eval.short_side = max(round(cfg.eval.short_side * scale), out.eval.crop or net.crop)
    return out


def candidate_recipe(cfg: Config, g: Gammas, step: int) -> Config:
    """The recipe a candidate of ``step`` trains with: :func:`network_recipe` plus the regularisation
    expansion (supplement "Expansion details"): half the epochs (stage starts and warm-up too), BN
    over ``expand.bn_clips`` clips, twice the batch before ``expand.batch_halving_step`` (the LR scaled
    linearly), drop-connect from ``expand.drop_connect_step``."""
    out, ex = network_recipe(cfg, g), cfg.expand
    out.train.epochs = max(1, round(cfg.train.epochs / 2))
    stages = {}
    for start, lr in zip(cfg.schedule.steps, cfg.schedule.lrs):
        stages.setdefault(min(start // 2, out.train.epochs - 1), lr)
    out.schedule.steps, out.schedule.lrs = list(stages), list(stages.values())
    out.schedule.warmup_epochs = cfg.schedule.warmup_epochs / 2
    out.multigrid.bn_base_size = ex.bn_clips
    out.optim.reference_batch = cfg.optim.reference_batch or cfg.train.batch_size
    if step < ex.batch_halving_step:
        out.train.batch_size = 2 * cfg.train.batch_size
    if step >= ex.drop_connect_step:
        out.model.drop_path = ex.drop_connect
    return out


def measure(g: Gammas, fields: dict[str, Any], num_classes: int) -> tuple[int, float]:
    """(parameters, GMACs of one clip) of the network of ``g`` with the model options ``fields``."""
    net = x3d_config(g, **fields)
    with torch.device("meta"):
        params = sum(p.numel() for p in X3D(net, num_classes=num_classes).parameters())
    return params, clip_gmacs(net, num_classes=num_classes)


def switches(cfg: Config) -> dict[str, Any]:
    """The recipe's model options that are not expansion factors (``conv_b``, ``swish``, ``se``...), as the
    model builder reads them."""
    try:
        resolved = model_config(cfg.model.name, **cfg.model.options)
    except ModelError as e:
        raise ConfigError(f"'model.options' = {cfg.model.options}: {e}") from None
    return {k: getattr(resolved, k) for k in cfg.model.options if k not in _GAMMA_FIELDS}


# --------------------------------------------------------------------------------------------------
# training the candidates


def train_in_process(recipe: Path, run_dir: Path) -> dict[str, Any]:
    """Train one candidate here (``vidgrid train RECIPE --out RUN --resume auto``)."""
    from vidgrid.engine.trainer import train

    return train(load_config(recipe), run_dir, resume="auto")


def train_in_subprocess(recipe: Path, run_dir: Path, *, device: str | None) -> dict[str, Any]:
    """Train one candidate in a child ``vidgrid train`` process (``device``: its CUDA_VISIBLE_DEVICES)."""
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": device} if device is not None else {}))
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / "train.log", "ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "vidgrid", "train", str(recipe), "--out", str(run_dir), "--resume", "auto"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    if done.returncode != 0 or not (run_dir / SUMMARY_FILE).is_file():
        raise VidgridError(f"{recipe}: training failed (exit {done.returncode}); see {run_dir.parent / 'train.log'}")
    return json.loads((run_dir / SUMMARY_FILE).read_text())


def validation_top1(summary: dict[str, Any], recipe: Path) -> float:
    """The best validation top-1 of a finished run."""
    if summary.get("preempted"):
        raise KeyboardInterrupt
    best = summary.get("best") or {}
    top1 = best.get("top1", summary.get("top1"))
    if top1 is None:
        raise ConfigError(f"{recipe}: the run reports no top-1 (expand needs a single-label classification recipe)")
    return float(top1)


def read_result(folder: Path) -> Candidate | None:
    """A finished candidate's result, or None."""
    path = folder / RESULT_FILE
    return Candidate(**json.loads(path.read_text())) if path.is_file() else None


def train_candidate(
    folder: Path, axis: str, g: Gammas, recipe: Config, size: tuple[int, float], train_fn: TrainFn
) -> Candidate:
    """Write the recipe, train (continuing an interrupted run), write ``result.json`` atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    save_config(recipe, folder / "recipe.yaml")
    summary = train_fn(folder / "recipe.yaml", folder / "run")
    params, gmacs = size
    result = Candidate(axis, g.as_dict(), params, round(gmacs, 5), validation_top1(summary, folder / "recipe.yaml"))
    atomic_write_text(folder / RESULT_FILE, json.dumps(asdict(result)) + "\n")
    return result


def run_jobs(jobs: list[Callable[[TrainFn], Candidate]], parallel: int, train_fn: TrainFn | None) -> list[Candidate]:
    """Run the candidates' jobs: here one after another, or in ``parallel`` child processes (one per GPU
    when CUDA is available)."""
    if parallel <= 1:
        return [job(train_fn or train_in_process) for job in jobs]
    slots: Queue[int] = Queue()
    for slot in range(parallel):
        slots.put(slot)
    gpus = torch.cuda.device_count()

    def on_a_slot(job: Callable[[TrainFn], Candidate]) -> Candidate:
        slot = slots.get()
        try:
            device = str(slot % gpus) if gpus else None
            return job(lambda recipe, run: train_in_subprocess(recipe, run, device=device))
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(on_a_slot, jobs))


# --------------------------------------------------------------------------------------------------
# the search


def choose(candidates: Sequence[Candidate]) -> Candidate:
    """The best top-1; ties go to the cheaper network."""
    return max(candidates, key=lambda c: (c.top1, -c.gflops))


def step_record(
    step: int, current: Candidate, candidates: Sequence[Candidate], chosen: Candidate | None
) -> dict[str, Any]:
    """One entry of ``trace.json``'s ``steps``."""
    return {
        "step": step,
        "from": {"gammas": current.gammas, "gflops": current.gflops, "top1": current.top1},
        "candidates": [asdict(c) for c in candidates],
        "chosen": chosen.axis if chosen else None,
    }


def expand_search(
    cfg: Config, out: Path, *, steps: int | None = None, axes: Sequence[str] | None = None, resume: bool = False,
    parallel: int = 1, train_fn: TrainFn | None = None,
) -> dict[str, Any]:
    """Run (or continue) the search into ``out``; returns the trace. ``train_fn`` replaces the trainer
    of in-process candidates (tests)."""
    steps = cfg.expand.steps if steps is None else steps
    axes = list(cfg.expand.axes if axes is None else axes)
    check_expand(cfg, axes, steps)
    if parallel < 1:
        raise VidgridError(f"--parallel {parallel}: expected an integer >= 1")
    if (out / "step_00").exists() and not resume:
        raise VidgridError(f"--out {out}: holds a search already; continue it with --resume or give another --out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = (switches(cfg), cfg.model.num_classes or load_split(cfg, "train").num_classes)

    g = start_gammas(cfg)
    folder = out / "step_00" / START
    current = finished(folder, g) or train_candidate(folder, START, g, candidate_recipe(cfg, g, 1), measure(g, *model),
                                                     train_fn or train_in_process)
    print(f"start {cfg.expand.start}: {format_gammas(current.gammas)}  {current.gflops:.4f} GFLOPs  "
          f"top-1 {100 * current.top1:.1f}%")
    trace: dict[str, Any] = {"steps": []}
    path = [current]
    for step in range(1, steps + 1):
        grown = {a: expand_to_cost(g, a, cfg.expand.cost_ratio * current.gflops, num_classes=model[1], **model[0])[0]
                 for a in axes}
        folders = {a: out / f"step_{step:02d}" / a for a in axes}
        done = {a: c for a in axes if (c := finished(folders[a], grown[a])) is not None}
        todo = [job_of(cfg, folders[a], a, grown[a], step, model) for a in axes if a not in done]
        done.update((c.axis, c) for c in run_jobs(todo, parallel, train_fn))
        candidates = [done[a] for a in axes]
        chosen = choose(candidates)
        trace["steps"].append(step_record(step, current, candidates, chosen))
        atomic_write_text(out / TRACE_FILE, json.dumps(trace, indent=2) + "\n")
        print(format_step(trace["steps"][-1]), flush=True)
        current, g = chosen, grown[chosen.axis]
        path.append(current)
    write_outputs(cfg, out, trace, g, path)
    print(f"expansion: {len(path) - 1} steps in {time.perf_counter() - started:.0f} s; final "
          f"{format_gammas(current.gammas)} {current.gflops:.4f} GFLOPs, top-1 {100 * current.top1:.1f}%")
    return trace


def finished(folder: Path, g: Gammas) -> Candidate | None:
    """The candidate of ``folder`` if it has finished; one that grew other γ (the search was started
    with other settings) is an error rather than a silent mix of two searches."""
    done = read_result(folder)
    if done is not None and done.gammas != g.as_dict():
        raise VidgridError(
            f"{folder / RESULT_FILE}: trained {format_gammas(done.gammas)} but the search now asks for "
            f"{format_gammas(g.as_dict())}; resume with the recipe and overrides it started with"
        )
    return done


def job_of(
    cfg: Config, folder: Path, axis: str, g: Gammas, step: int, model: tuple[dict[str, Any], int]
) -> Callable[[TrainFn], Candidate]:
    """Training job of one candidate (its size measured up front; ``model``: options, classes)."""
    recipe, size = candidate_recipe(cfg, g, step), measure(g, *model)
    return lambda train_fn: train_candidate(folder, axis, g, recipe, size, train_fn)


# --------------------------------------------------------------------------------------------------
# output


def format_gammas(g: dict[str, float]) -> str:
    return " ".join(f"γ{k}={v:g}" for k, v in g.items())


def format_step(record: dict[str, Any]) -> str:
    """The step's table: axis, γ, params, GFLOPs (and the ratio to the current model), top-1, chosen."""
    base = record["from"]
    lines = [f"step {record['step']}: from {format_gammas(base['gammas'])}  {base['gflops']:.4f} GFLOPs  "
             f"top-1 {100 * base['top1']:.1f}%",
             f"  {'axis':<11}{'γτ':>7}{'γt':>4}{'γs':>7}{'γw':>7}{'γb':>7}{'γd':>7}{'params':>10}{'GFLOPs':>9}"
             f"{'ratio':>7}{'top-1':>7}  chosen"]
    for c in record["candidates"]:
        g = c["gammas"]
        lines.append(
            f"  {c['axis']:<11}{g['tau']:>7.3g}{g['t']:>4}{g['s']:>7.3f}{g['w']:>7.3f}{g['b']:>7.3f}{g['d']:>7.3f}"
            f"{c['params'] / 1e6:>9.3f}M{c['gflops']:>9.4f}{c['gflops'] / base['gflops']:>7.2f}{100 * c['top1']:>6.1f}%"
            f"  {'*' if c['axis'] == record['chosen'] else ''}"
        )
    return "\n".join(lines)


def write_outputs(cfg: Config, out: Path, trace: dict[str, Any], final: Gammas, path: Sequence[Candidate]) -> None:
    """``expansion.png`` and ``model.yaml`` (the recipe at its own schedule with the final γ)."""
    plot_expansion(out / PLOT_FILE, trace, path)
    recipe = network_recipe(cfg, final)
    recipe.expand = ExpandConfig()
    header = (f"# X3D grown by vidgrid expand: {format_gammas(final.as_dict())}, {path[-1].gflops:.4f} GFLOPs per "
              f"{recipe.data.frames}x{recipe.data.crop}² clip, search top-1 {100 * path[-1].top1:.1f}%\n")
    atomic_write_text(out / MODEL_FILE, header + yaml.safe_dump(config_to_dict(recipe), sort_keys=False))
    print(f"written: {out / TRACE_FILE}, {out / PLOT_FILE}, {out / MODEL_FILE}")


def plot_expansion(file: Path, trace: dict[str, Any], path: Sequence[Candidate]) -> Path:
    """Top-1 against GFLOPs (log axis): every candidate by axis, the chosen path as a line (X3D Fig. 2)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    colors = {axis: f"C{i}" for i, axis in enumerate(AXES)}
    for axis in AXES:
        points = [(c["gflops"], 100 * c["top1"]) for s in trace["steps"] for c in s["candidates"] if c["axis"] == axis]
        if points:
            ax.scatter(*zip(*points), color=colors[axis], label=f"X-{axis.capitalize()}", s=25, alpha=0.8)
    ax.plot([c.gflops for c in path], [100 * c.top1 for c in path], color="black", marker="o", lw=1.5, label="chosen")
    for i, c in enumerate(path):
        ax.annotate(str(i), (c.gflops, 100 * c.top1), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per clip (multiply-adds, log scale)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(f"progressive expansion: {len(path) - 1} steps, ĉ = {_ratio_text(path)}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.savefig(file, dpi=100)
    return file


def _ratio_text(path: Sequence[Candidate]) -> str:
    ratios = [b.gflops / a.gflops for a, b in zip(path, path[1:])]
    return f"{math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f} (geometric mean)" if ratios else "-"
