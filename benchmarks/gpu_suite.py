"""The GPU figures in one run of about 8 minutes on one H100/H200: checks first, then speed.

Sections, in order, each with its own wall-clock budget (``Settings.budgets``; a section that reaches
its budget stops starting measurements and is marked ``budget``):

1. ``correctness``: X3D-S, SlowFast R50 8×8 and MViTv2-S train a few SGD steps on one fixed batch in
   bf16 autocast with channels_last_3d (loss finite and falling), then their eval-mode logits in bf16
   are compared with fp32 (relative L2 error within ``Settings.tolerance``).
2. ``models``: per model (X3D-XS/S/M/L, SlowFast R50 8×8, MViTv2-S 16×4, MViTv2-B 32×3 at their
   default inputs) and per variant (``bench_models``' CUDA variants: ``eager`` = fp32, ``bf16``,
   ``bf16+cl3d`` = bf16 + channels_last_3d, ``bf16+cl3d+compile`` = that + torch.compile): training
   clips/s, first-step time (the compile time in the compiled variant),
   peak memory, MFU against 989 TFLOP/s dense bf16 (``gpu_results.PEAK_BF16_FLOPS``); ``cudnn-bench``
   variants let cuDNN time its algorithms per shape instead of choosing by heuristics. The batch is the
   recipe's per-GPU batch (its global batch over an 8-GPU node), halved until it fits. PyTorchVideo's
   builders of the same architectures (X3D, SlowFast; it has no MViTv2) run beside them where it
   imports. Every eager variant first (the three checked models of both sources, then the rest), then
   the compiled ones. The first compiled figure includes Inductor's one-off start-up.
3. ``multigrid_compile``: the demo recipe's model and multigrid shapes (short cycle: the shape and
   batch change every iteration; long cycle: every segment) under eager, ``torch.compile`` with
   automatic dynamic shapes (the trainer's ``model.compile``), ``dynamic=True`` and ``dynamic=False``
   (one graph per shape): recompiles, total and steady time, and the cheapest over the demo's run.
4. ``demo``: the synthetic-data demo's baseline vs multigrid wall clock, data pipeline in the loop
   (``vidgrid.engine.trainer.train``, fp32 channels-first as the X3D recipes train on a GPU, 15 loader
   workers) at 6 baseline epochs by default (``--demo-epochs``; the recipe's 40 do not fit the budget:
   20 epochs took 147 s on an H200 in bf16 channels-last, 59 ms per iteration of 8 clips, and 33 s on
   an H100 in fp32 channels-first; its LR stages are scaled as in ``bench_multigrid``): the baseline, multigrid with the recipe's batch cap, and multigrid with
   Eq. 1's batches (``multigrid.max_batch_factor=0``), whose fewer, larger steps cost about as much
   each as the cap's on a GPU where the demo's model is bound by kernel launches (H100: 13-17 ms).
5. ``loader``: decoded training clips/s of the DataLoader with 15 workers at X3D-M and SlowFast inputs
   after ``data prepare``, against what the GPU consumes (section 2), and GPU-side normalise/flip/crop.

Every figure goes to ``OUT/gpu_suite.json`` and a short table to ``OUT/gpu_suite.md``, both rewritten
after each measurement, so a run stopped at any point keeps what it measured.

    python -m benchmarks.gpu_suite --out OUT                # on the GPU machine (benchmarks/gpu_suite.sh installs first)
    python -m benchmarks.gpu_suite --dry --out OUT          # CPU rehearsal: tiny inputs, about 2 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import itertools
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from benchmarks.bench_multigrid import scaled_stages
from benchmarks.bench_models import DEFAULT_VARIANTS, VARIANTS
from benchmarks.gpu_loader import gpu_augment_speed, loader_speed, prepared_videos
from benchmarks.gpu_models import (
    Subject, autocast, check_bf16_training, forward_gmacs, measure_fitting, pytorchvideo_subjects, release, synchronizer,
    vidgrid_subject,
)
from benchmarks.gpu_results import (
    PEAK_BF16_FLOPS, Alarm, Budget, Results, cheapest_compile_mode, section_budget, time_limit,
)
from vidgrid.config import load_config
from vidgrid.data.annotations import Annotations, Sample
from vidgrid.data.dataset import VideoClipDataset
from vidgrid.data.synthetic import write_synthetic_dataset
from vidgrid.engine.build import build_model
from vidgrid.engine.demo import GPU_LAYOUT
from vidgrid.engine.subbatch_bn import bn_grouping, convert_to_sub_batch_norm, set_bn_groups
from vidgrid.engine.trainer import train
from vidgrid.models.profile import training_step
from vidgrid.multigrid.schedule import schedule_from_config
from vidgrid.tasks import task_for
from vidgrid.types import ClipShape

MODELS = ("x3d_s", "slowfast_r50_8x8", "mvitv2_s_16x4", "x3d_xs", "x3d_m", "x3d_l", "mvitv2_b_32x3")
"""The measured models; the first three are the checked ones and are compiled first."""
CHECKED = MODELS[:3]
RECIPES = {"x3d": "x3d_s_kinetics", "slowfast": "slowfast_r50_multigrid", "mvitv2": "mvitv2_b_kinetics"}
"""The recipe whose batch each family trains at."""
GPUS_PER_NODE = 8
"""The recipes' global batches are for one 8-GPU node."""
LOADER_INPUTS = {"x3d_m": (16, 5, 224), "slowfast_r50_8x8": (32, 2, 224)}
"""Model: (frames, sampling rate, crop) of its training clips."""


DEMO_ON_GPU = ("train.precision=fp32", *GPU_LAYOUT)
"""The demo recipe in the X3D recipes' precision and ``vidgrid demo``'s layout on a GPU (the dry run
rehearses the same): fp32 (bf16 saved X3D memory, not time) and channels-first
(``vidgrid.engine.demo.GPU_LAYOUT``); its loader workers are :attr:`Settings.workers`."""
DEMO_ARMS = {"baseline": ["multigrid.enabled=false"], "multigrid": ["multigrid.enabled=true"],
             "multigrid_eq1": ["multigrid.enabled=true", "multigrid.max_batch_factor=0"]}
"""The demo runs: the recipe's multigrid caps each step's batch; ``multigrid_eq1`` takes Eq. 1's, fewer
and larger steps."""


@dataclass(frozen=True)
class Settings:
    """Sizes and budgets of a run: ``GPU`` for the real one, ``DRY`` for the CPU rehearsal."""

    device: str
    compile_backend: str
    """``inductor`` on the GPU; the rehearsal compiles with ``eager`` (Dynamo's graph capture, guards
    and recompiles, no code generation) to keep within its time."""
    compile_reserve: float
    """Seconds a section must have left to start a compiled measurement."""
    tiny: tuple[int, int] | None
    """(frames, crop) of every model in a dry run; None = default inputs."""
    models: tuple[str, ...]
    batch: int | None
    """Clips per training step; None = the recipe's per-GPU batch."""
    min_steps: int
    """Timed steps per speed figure at least (after one warm-up step) ..."""
    max_steps: int
    """... and at most, stopping after ``figure_s`` seconds."""
    figure_s: float
    check_batch: int
    """Clips of the fixed batch of the bf16 training check."""
    check_steps: int
    """SGD steps of the bf16 training check."""
    tolerance: float
    """Largest relative L2 error of bf16 eval logits against fp32: bf16 rounds each result to 2^-9
    (0.2%); through 50-100 layers the CPU rehearsal's X3D-S, SlowFast and MViTv2-S stay at 0.2-0.5%,
    so 5% leaves room for other GPU kernels while a layer computing in the wrong type shows."""
    precision: str
    """``train.precision`` of the demo runs and the multigrid compile runs."""
    mg_rounds: int
    """Passes over each multigrid cycle's shapes (the last one is the steady state)."""
    demo_epochs: int
    """Baseline epochs of the demo runs (the recipe's LR stages scaled to them)."""
    demo_seeds: tuple[int, ...]
    """``train.seed`` of each round of demo runs (every arm once per seed)."""
    demo_overrides: tuple[str, ...]
    """Recipe overrides of every demo run besides data, epochs and device."""
    demo_train_per_class: int
    workers: int
    """DataLoader worker processes (demo and loader sections)."""
    loader_batch: int
    loader_seconds: float
    """Seconds per loader figure, after the first batch."""
    total_s: float
    """The whole run's budget: sections after an overrun get proportionally less."""
    budgets: dict[str, float] = field(default_factory=dict)
    """Planned seconds per section."""

    @property
    def dry(self) -> bool:
        """The CPU rehearsal (``DRY`` and its command-line variants)."""
        return self.device == "cpu"

    @property
    def demo_train_videos(self) -> int:
        """Training videos of the demo data (its 10 classes)."""
        return 10 * self.demo_train_per_class


GPU = Settings(
    device="cuda", compile_backend="inductor", compile_reserve=30.0, tiny=None, models=MODELS, batch=None,
    min_steps=2, max_steps=10, figure_s=1.5, check_batch=8, check_steps=6, tolerance=0.05, precision="bf16",
    mg_rounds=3, demo_epochs=6, demo_seeds=(0,), demo_overrides=DEMO_ON_GPU, demo_train_per_class=100, workers=15,
    loader_batch=32, loader_seconds=8.0,
    total_s=470, budgets={"correctness": 30, "models": 260, "multigrid_compile": 60, "demo": 80, "loader": 40},
)
DRY = Settings(
    device="cpu", compile_backend="eager", compile_reserve=5.0, tiny=(4, 32), models=CHECKED, batch=2,
    min_steps=1, max_steps=2, figure_s=0.2, check_batch=2, check_steps=4, tolerance=0.05, precision="bf16",
    mg_rounds=2, demo_epochs=1, demo_seeds=(0,), demo_overrides=DEMO_ON_GPU, demo_train_per_class=2, workers=1,
    loader_batch=2, loader_seconds=1.0,
    total_s=110, budgets={"correctness": 15, "models": 40, "multigrid_compile": 20, "demo": 20, "loader": 15},
)


def recipe_batch(name: str) -> int:
    """The per-GPU batch of the recipe of ``name``'s family."""
    family = name.split("_")[0]
    return load_config(RECIPES[family]).train.batch_size // GPUS_PER_NODE


# --------------------------------------------------------------------------------------------------
# sections: each returns "done" or "budget"


def correctness(results: Results, s: Settings, budget: Budget, device: torch.device) -> str:
    for name in CHECKED:
        if budget.spent():
            return "budget"
        row = check_bf16_training(name, tiny=s.tiny, batch=s.check_batch, steps=s.check_steps, device=device,
                                  tolerance=s.tolerance)
        results.add("correctness", row)
        print(f"  {name}: losses {' '.join(f'{v:.3f}' for v in row['losses'])}, eval rel. err {row['eval_rel_err']:.4f}"
              f" -> {'ok' if row['ok'] else 'FAILED'}", flush=True)
    return "done"


def models(results: Results, s: Settings, budget: Budget, device: torch.device) -> str:
    subjects = [vidgrid_subject(name, s.tiny) for name in s.models]
    theirs, why_not = pytorchvideo_subjects(list(s.models), s.tiny)
    results.set("pytorchvideo", {"imported": why_not is None, "note": why_not or "X3D and SlowFast builders; no MViTv2"})
    if why_not:
        print(f"  {why_not}", flush=True)
    subjects += theirs
    gmacs = {(x.model, x.source): forward_gmacs(x) for x in subjects}
    status = "done"
    for subject, variant in measurement_plan(subjects, DEFAULT_VARIANTS["cuda"]):
        if budget.spent(reserve=s.compile_reserve if VARIANTS[variant].compiled else 2.0):
            status = "budget"  # a compiled figure may not fit where an eager one still does
            continue
        row = _guarded(lambda: measure_fitting(
            subject, variant, batch=s.batch or recipe_batch(subject.model), device=device,
            gmacs=gmacs[subject.model, subject.source], min_steps=s.min_steps, max_steps=s.max_steps,
            seconds=s.figure_s, compile_backend=s.compile_backend,
        ), budget, model=subject.model, source=subject.source, variant=variant)
        results.add("models", row)
        if "error" not in row:
            peak = f"{row['peak_memory_gib']:.1f} GiB" if row["peak_memory_gib"] is not None else "-"
            print(f"  {row['model']:<17} {row['source']:<12} {row['variant']:<18} batch {row['batch']:>3} "
                  f"{row['train_clips_per_s']:9.1f} clips/s  first step {row['first_step_s']:6.2f} s  {peak}  "
                  f"MFU {row['mfu_pct']:5.2f}%", flush=True)
    return status


def measurement_plan(subjects: list[Subject], variants: list[str]) -> list[tuple[Subject, str]]:
    """(subject, variant) in the order they are measured: every eager variant first (the checked models
    of both sources, then the rest), then the compiled ones in the same order. A compilation takes
    minutes (X3D-S: 120 s on an H200), so a budget cut falls on compiled figures, never on a model's
    eager ones."""
    ordered = [x for tier in (CHECKED, [m for m in MODELS if m not in CHECKED]) for x in subjects if x.model in tier]
    eager = [v for v in variants if not VARIANTS[v].compiled]
    compiled = [v for v in variants if VARIANTS[v].compiled]
    return [(x, v) for x in ordered for v in eager] + [(x, v) for x in ordered for v in compiled]


def multigrid_compile(results: Results, s: Settings, budget: Budget, device: torch.device) -> str:
    cfg = load_config("demo")
    schedule = schedule_from_config(cfg)
    last = schedule.segments[-1]
    cycles = {
        "short": [(st.shape, st.global_batch, last) for st in last.steps] * s.mg_rounds,
        "long": [(seg.shape, seg.base_batch, seg) for seg in schedule.segments for _ in range(2)] * s.mg_rounds,
    }
    iterations = schedule.total_iterations(s.demo_train_videos)
    measured: dict[str, dict[str, dict[str, float]]] = {cycle: {} for cycle in cycles}
    for mode in ("eager", "automatic", "dynamic", "static"):
        for cycle, plan in cycles.items():
            if budget.spent(reserve=2.0 if mode == "eager" else s.compile_reserve):
                return "budget"
            row = _guarded(lambda: compile_run(cfg, plan, mode, rounds=s.mg_rounds, s=s, device=device),
                           budget, cycle=cycle, mode=mode)
            results.add("multigrid_compile", row)
            if "error" in row:
                continue
            measured[cycle][mode] = row
            results.set("multigrid_cheapest", {
                c: {"mode": cheapest_compile_mode(m, iterations), "iterations": iterations} for c, m in measured.items() if m
            })
            print(f"  {cycle:<5} {mode:<9} {row['recompiles']:>2} graphs  total {row['total_s']:6.2f} s  overhead "
                  f"{row['overhead_s']:6.2f} s  steady {1000 * row['steady_s_per_iter']:7.1f} ms/iter", flush=True)
    return "done"


def compile_run(cfg: Any, plan: list, mode: str, *, rounds: int, s: Settings, device: torch.device) -> dict[str, Any]:
    """Train the demo model along ``plan`` ((shape, batch, segment) per iteration) in ``mode``."""
    torch._dynamo.reset()
    config = torch._dynamo.config
    for limit in ("recompile_limit", "cache_size_limit"):  # one graph per shape must fit
        if hasattr(config, limit):
            setattr(config, limit, 64)
    model = convert_to_sub_batch_norm(build_model(cfg, num_classes=10)).to(device).to(memory_format=torch.channels_last_3d)
    dynamic = {"automatic": None, "dynamic": True, "static": False}
    net = model if mode == "eager" else torch.compile(model, backend=s.compile_backend, dynamic=dynamic[mode])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    sync = synchronizer(device)
    graphs_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    times = []
    for shape, batch, segment in plan:
        set_bn_groups(model, bn_grouping(segment.base_batch, world_size=1, bn_base_size=cfg.multigrid.bn_base_size).local_groups)
        x = torch.randn(batch, 3, shape.frames, shape.crop, shape.crop, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        started = time.perf_counter()
        with autocast(device, s.precision == "bf16"):
            training_step(net, optimizer, x.contiguous(memory_format=torch.channels_last_3d), y)()
        sync()
        times.append(time.perf_counter() - started)
    per_round = len(plan) // rounds
    steady = sum(times[-per_round:]) / per_round
    del model, net, optimizer
    release(device)
    return {
        "cycle_shapes": sorted({f"{b}x{sh.frames}x{sh.crop}" for sh, b, _ in plan}), "iterations": len(plan),
        "recompiles": torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs_before,
        "total_s": sum(times), "steady_s_per_iter": steady,
        "overhead_s": max(0.0, sum(times) - steady * len(plan)),  # timing noise can make eager's a little negative
    }


def demo(results: Results, s: Settings, budget: Budget, device: torch.device, work: Path) -> str:
    data = work / "demo-data"
    if not (data / "train.csv").is_file():
        started = time.perf_counter()
        write_synthetic_dataset(data, train_per_class=s.demo_train_per_class, val_per_class=max(2, s.demo_train_per_class // 5))
        print(f"  synthetic dataset: {time.perf_counter() - started:.1f} s", flush=True)
    base = load_config("demo")
    common = [
        f"train.epochs={s.demo_epochs}", *scaled_stages(base, s.demo_epochs), f"data.train_list={data / 'train.csv'}",
        f"data.val_list={data / 'val.csv'}", f"train.device={device.type}", f"data.workers={s.workers}", *s.demo_overrides,
    ]
    seconds_per_iteration = 0.0  # the slowest run's so far: the next run's expected time
    for seed, (name, arm) in itertools.product(s.demo_seeds, DEMO_ARMS.items()):
        cfg = load_config("demo", [*common, *arm, f"train.seed={seed}"])
        if budget.left() < schedule_from_config(cfg).total_iterations(s.demo_train_videos) * seconds_per_iteration:
            return "budget"
        started = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # the progress bar
            summary = train(cfg, work / f"demo-{name}-seed{seed}")
        spent = time.perf_counter() - started
        seconds_per_iteration = max(seconds_per_iteration, spent / summary["iterations"])
        row = {"run": name, "seed": seed, "epochs": summary["epochs"], "iterations": summary["iterations"],
               "wall_time_s": summary["wall_time_s"], "run_time_s": spent, "top1": summary["top1"],
               "clips_seen": summary["clips_seen"], "overrides": [*s.demo_overrides, *arm]}
        results.add("demo", row)
        print(f"  {name}, seed {seed}: {row['wall_time_s']:.1f} s, {row['iterations']} iterations, top-1 {100 * row['top1']:.1f}%", flush=True)
    return "done"


def loader(results: Results, s: Settings, budget: Budget, device: torch.device, work: Path) -> str:
    videos = prepared_videos(work / "loader", count=4 if s.device == "cuda" else 1)
    annotations = Annotations([Sample(p, 0) for p in videos] * 64, ["clip"], False, {})
    best = best_speeds(results)
    for name, (frames, rate, crop) in LOADER_INPUTS.items():
        if budget.spent(reserve=s.loader_seconds):
            return "budget"
        dataset = VideoClipDataset(annotations, target=task_for("classification", annotations).clip_target,
                                   base_frames=frames, sampling_rate=rate, base_crop=crop)
        shape = ClipShape(frames, crop)
        batches = [[(i % len(dataset), shape) for i in range(b * s.loader_batch, (b + 1) * s.loader_batch)] for b in range(10_000)]
        clips_per_s = loader_speed(DataLoader(dataset, batch_sampler=batches, num_workers=s.workers,
                                              pin_memory=device.type == "cuda"), s.loader_batch, s.loader_seconds)
        gpu = best.get(name)
        row = {"what": f"DataLoader {s.workers} workers, {name} clips {frames}x{crop}² (stride {rate})", "model": name,
               "clips_per_s": clips_per_s, "gpu_clips_per_s": gpu, "loader_over_gpu": clips_per_s / gpu if gpu else None,
               "note": f"the model trains {gpu:.0f} clips/s" if gpu else "no training figure"}
        results.add("loader", row)
        print(f"  {row['what']}: {clips_per_s:.1f} clips/s ({row['note']})", flush=True)
    frames, _, crop = LOADER_INPUTS["x3d_m"]
    row = gpu_augment_speed(frames, crop, batch=s.loader_batch, device=device, seconds=s.loader_seconds / 4)
    results.add("loader", row)
    print(f"  {row['what']}: {row['clips_per_s']:.0f} clips/s", flush=True)
    try:
        import torchcodec  # noqa: F401
        note = "imports (CUDA decode not measured here)"
    except ImportError as e:
        note = f"not importable ({e})"
    results.add("loader", {"what": "torchcodec", "clips_per_s": None, "note": note})
    return "done"


def best_speeds(results: Results) -> dict[str, float]:
    """The fastest vidgrid training clips/s of each model over its variants."""
    best: dict[str, float] = {}
    for row in results.data.get("models", []):
        if row.get("source") == "vidgrid" and "error" not in row:
            best[row["model"]] = max(best.get(row["model"], 0.0), row["train_clips_per_s"])
    return best


# --------------------------------------------------------------------------------------------------
# the run


def _guarded(measure: Callable[[], dict[str, Any]], budget: Budget, **where: Any) -> dict[str, Any]:
    """One measurement within what is left of ``budget``; a failure or an overrun becomes a row with the
    error (a failure's traceback printed) so that the run goes on to the next figure."""
    alarm = Alarm(budget.left())
    try:
        with time_limit(alarm):
            return {**where, **measure()}
    except Exception as e:  # noqa: BLE001: one broken figure must not cost the run
        if alarm.fired:
            return {**where, "error": alarm.error()}
        traceback.print_exc()
        return {**where, "error": f"{type(e).__name__}: {e}".splitlines()[0]}


def meta_of(s: Settings, device: torch.device) -> dict[str, Any]:
    cuda = device.type == "cuda"
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "dry": s.dry,
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "cpu_cores": os.cpu_count(), "peak_tflops": PEAK_BF16_FLOPS / 1e12,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "settings": asdict(s),
    }


SECTIONS = ("correctness", "models", "multigrid_compile", "demo", "loader")


def settings_for(dry: bool, *, models: list[str] | None = None, demo_epochs: int | None = None,
                 demo_seeds: list[int] | None = None, budgets: list[str] = ()) -> Settings:
    """``DRY`` or ``GPU`` with the command line's changes; ``budgets`` are ``SECTION=SECONDS`` words, and
    the whole run's budget grows or shrinks with them."""
    s = DRY if dry else GPU
    planned = dict(s.budgets)
    for word in budgets:
        name, _, seconds = word.partition("=")
        if name not in SECTIONS or not seconds.replace(".", "", 1).isdigit():
            raise ValueError(f"--budget {word}: expected SECTION=SECONDS with SECTION one of {', '.join(SECTIONS)}")
        planned[name] = float(seconds)
    total = s.total_s + sum(planned.values()) - sum(s.budgets.values())
    return replace(s, models=tuple(models or s.models), demo_epochs=demo_epochs or s.demo_epochs,
                   demo_seeds=tuple(demo_seeds or s.demo_seeds), budgets=planned, total_s=total)


def run(out: Path, work: Path, s: Settings, *, sections: tuple[str, ...]) -> Results:
    """Every section in order, within its budget; returns the results (also saved under ``out``)."""
    # Dynamo's symbolic shapes log a warning per failed range analysis (210 lines in one H200 run's
    # dynamic-shape compile of the demo model), which buries the figures.
    logging.getLogger("torch.utils._sympy.interp").setLevel(logging.ERROR)
    if s.dry:
        torch.set_num_threads(1)
    device = torch.device(s.device)
    results = Results(out, meta_of(s, device))
    calls: dict[str, Callable[[Budget], str]] = {
        "correctness": lambda b: correctness(results, s, b, device),
        "models": lambda b: models(results, s, b, device),
        "multigrid_compile": lambda b: multigrid_compile(results, s, b, device),
        "demo": lambda b: demo(results, s, b, device, work),
        "loader": lambda b: loader(results, s, b, device, work),
    }
    started = time.perf_counter()
    planned = {name: s.budgets[name] for name in sections}
    for name in sections:
        budget = Budget(section_budget(planned, name, s.total_s - (time.perf_counter() - started)))
        print(f"== {name} (budget {budget.seconds:.0f} s)", flush=True)
        try:
            status = calls[name](budget)
        except Exception as e:  # noqa: BLE001: the next section still runs
            traceback.print_exc()
            status = f"failed: {type(e).__name__}: {e}".splitlines()[0]
        results.section_status(name, status, budget.seconds - budget.left())
        print(f"   {name}: {status} in {budget.seconds - budget.left():.0f} s", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-suite"), help="folder for gpu_suite.json and gpu_suite.md")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for data and runs (default: a temporary one)")
    parser.add_argument("--dry", action="store_true", help="rehearse on the CPU with tiny inputs (about 2 minutes)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="the sections to run, in this order")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None,
                        help="measure only these models (default: all, or the checked three in a dry run)")
    parser.add_argument("--demo-epochs", type=int, default=None, help="baseline epochs of the demo runs")
    parser.add_argument("--demo-seeds", type=int, nargs="+", default=None, help="seeds of the demo runs (default: 0)")
    parser.add_argument("--budget", nargs="+", default=[], metavar="SECTION=SECONDS",
                        help="a section's planned seconds (the whole run's budget is their sum)")
    args = parser.parse_args()
    try:
        s = settings_for(args.dry, models=args.models, demo_epochs=args.demo_epochs, demo_seeds=args.demo_seeds,
                         budgets=args.budget)
    except ValueError as e:
        parser.error(str(e))
    if not args.dry and not torch.cuda.is_available():
        print(f"error: no CUDA device (torch {torch.__version__}); run with --dry to rehearse on the CPU", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_suite_") as tmp:
        results = run(args.out, args.work or Path(tmp), s, sections=tuple(args.sections))
    print(results.table_path.read_text())
    print(f"total {time.perf_counter() - started:.0f} s; figures in {results.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
