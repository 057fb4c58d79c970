"""Multigrid vs baseline training: same model, same recipe, same hardware (multigrid paper §4.1).

Writes the synthetic dataset (``vidgrid synth``) if it is not there, trains the demo recipe
(``configs/demo.yaml``: a small X3D-XS, base 8×64², τ = 4, SGD, cosine) twice — with
``multigrid.enabled=false`` (baseline) and with the default multigrid (long + short cycle, 1.5× the
epochs) — and prints wall time, iterations, epochs and validation top-1 of each, and the speedup.
Target on the 2-core CPU machines: ≥ 2.5× wall-clock at top-1 within 1 point.

    python benchmarks/bench_multigrid.py [--out DIR] [--epochs N] [--seeds S ...] [--train-per-class N]
                                         [--only baseline|multigrid] [KEY=VALUE ...]

``--epochs`` is the baseline's (default: the demo's 40; the recipe's LR stage starts are scaled with
it); use enough for the baseline to saturate, or the comparison measures how far each run is from
converged rather than multigrid. ``--seeds`` repeats both runs per ``train.seed`` (one dataset) and
adds the mean and range: a single small run is noisy. Extra ``KEY=VALUE`` overrides apply to every
run (e.g. ``train.device=cuda data.workers=8``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from vidgrid.config import Config, load_config
from vidgrid.data.synthetic import write_synthetic_dataset
from vidgrid.engine.trainer import train
from vidgrid.errors import VidgridError
from vidgrid.multigrid.schedule import schedule_from_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-multigrid", help="folder for the dataset and the runs")
    parser.add_argument("--epochs", type=int, default=None, help="baseline epochs (default: the demo's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed of each pair of runs")
    parser.add_argument("--train-per-class", type=int, default=100, help="synthetic training videos per class")
    parser.add_argument("--only", choices=["baseline", "multigrid"], default=None, help="run one of the two")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    try:
        run_all(args)
    except VidgridError as e:
        raise SystemExit(f"error: {e}") from None


def run_all(args: argparse.Namespace) -> None:
    out = Path(args.out)
    data = out / "data"
    if not (data / "train.csv").is_file():
        started = time.perf_counter()
        write_synthetic_dataset(data, train_per_class=args.train_per_class, val_per_class=20)
        print(f"synthetic dataset: {data} ({time.perf_counter() - started:.0f}s)", flush=True)
    demo = load_config("demo")
    epochs = args.epochs or demo.train.epochs
    common = [
        f"train.epochs={epochs}", *scaled_stages(demo, epochs),
        f"data.train_list={data / 'train.csv'}", f"data.val_list={data / 'val.csv'}", *args.overrides,
    ]
    names = [n for n in ("baseline", "multigrid") if args.only in (None, n)]
    results: dict[str, list[dict]] = {name: [] for name in names}
    for seed in args.seeds:
        for name in names:
            enabled = "true" if name == "multigrid" else "false"
            cfg = load_config("demo", [*common, f"train.seed={seed}", f"multigrid.enabled={enabled}"])
            schedule = schedule_from_config(cfg)
            print(f"\n== {name}, seed {seed}: {schedule.total_epochs} epochs, shapes "
                  + ", ".join(f"{s.start_epoch}-{s.end_epoch}: {s.shape}" for s in schedule.segments), flush=True)
            folder = out / name if len(args.seeds) == 1 else out / f"{name}-seed{seed}"
            started = time.perf_counter()
            summary = train(cfg, folder)
            results[name].append({
                "seed": seed,
                "wall_time_s": summary["wall_time_s"],
                "run_time_s": time.perf_counter() - started,
                "iterations": summary["iterations"],
                "epochs": summary["epochs"],
                "top1": summary["top1"],
                "clips_seen": summary["clips_seen"],
            })

    print("\nrun        seed  wall (s)  total (s)  iterations  epochs  clips  val top-1")
    for name, runs in results.items():
        for r in runs:
            print(f"{name:<10} {r['seed']:4d}  {r['wall_time_s']:8.1f}  {r['run_time_s']:9.1f}  {r['iterations']:10d}  "
                  f"{r['epochs']:6d}  {r['clips_seen']:5d}  {100 * r['top1']:8.1f}%")
    means = {name: mean_of(runs) for name, runs in results.items()}
    if len(args.seeds) > 1:
        for name, m in means.items():
            print(f"{name:<10} mean  {m['wall_time_s']:8.1f}  top-1 {100 * m['top1']:.1f}% "
                  f"(range {100 * m['top1_min']:.1f}-{100 * m['top1_max']:.1f}%)")
    if len(means) == 2:
        base, mg = means["baseline"], means["multigrid"]
        print(f"speedup: {base['wall_time_s'] / mg['wall_time_s']:.2f}x wall-clock, "
              f"{base['iterations'] / mg['iterations']:.2f}x fewer iterations; "
              f"top-1 {100 * (mg['top1'] - base['top1']):+.1f} points" + (" (means)" if len(args.seeds) > 1 else ""))
    (out / "bench_multigrid.json").write_text(json.dumps({"runs": results, "means": means}, indent=2) + "\n")


def scaled_stages(demo: Config, epochs: int) -> list[str]:
    """Overrides for the demo recipe's LR stages with their start epochs scaled from its own epochs
    to ``epochs``; a stage squeezed to nothing is dropped."""
    starts: list[int] = []
    lrs: list[float] = []
    for start, lr in zip(demo.schedule.steps, demo.schedule.lrs):
        scaled = round(start * epochs / demo.train.epochs)
        if scaled < epochs and (not starts or scaled > starts[-1]):
            starts.append(scaled)
            lrs.append(lr)
    return [f"schedule.steps={starts}", f"schedule.lrs={lrs}"]


def mean_of(runs: list[dict]) -> dict:
    """Mean wall time, iterations and top-1 over seeds, with the top-1 range."""
    top1 = [r["top1"] for r in runs]
    return {
        "wall_time_s": statistics.fmean(r["wall_time_s"] for r in runs),
        "iterations": statistics.fmean(r["iterations"] for r in runs),
        "top1": statistics.fmean(top1),
        "top1_min": min(top1),
        "top1_max": max(top1),
    }


if __name__ == "__main__":
    main()
