"""Multigrid vs baseline training: same model, same recipe, same hardware (multigrid paper §4.1).

Writes the synthetic dataset (``vidgrid synth``) if it is not there, trains the demo recipe
(``configs/demo.yaml``: a small X3D-XS, base 8×64², τ = 4, SGD, cosine) twice — with
``multigrid.enabled=false`` (baseline) and with the default multigrid (long + short cycle, 1.5× the
epochs) — and prints wall time, iterations, epochs and validation top-1 of each, and the speedup.
Target on the 2-core CPU machines: ≥ 2.5× wall-clock at top-1 within 1 point.

    python benchmarks/bench_multigrid.py [--out DIR] [--epochs N] [--train-per-class N] [KEY=VALUE ...]

``--epochs`` is the baseline's (the demo's own is 24); use enough for the baseline to saturate, or
the comparison measures how far each run is from converged rather than multigrid. Extra
``KEY=VALUE`` overrides apply to both runs (e.g. ``train.device=cuda data.workers=8``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vidgrid.config import load_config
from vidgrid.data.synthetic import write_synthetic_dataset
from vidgrid.engine.trainer import train
from vidgrid.multigrid.schedule import schedule_from_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-multigrid", help="folder for the dataset and both runs")
    parser.add_argument("--epochs", type=int, default=32, help="baseline epochs (multigrid: 1.5x)")
    parser.add_argument("--train-per-class", type=int, default=100, help="synthetic training videos per class")
    parser.add_argument("--only", choices=["baseline", "multigrid"], default=None, help="run one of the two")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    out = Path(args.out)
    data = out / "data"
    if not (data / "train.csv").is_file():
        started = time.perf_counter()
        write_synthetic_dataset(data, train_per_class=args.train_per_class, val_per_class=20)
        print(f"synthetic dataset: {data} ({time.perf_counter() - started:.0f}s)", flush=True)
    common = [
        f"train.epochs={args.epochs}", f"data.train_list={data / 'train.csv'}", f"data.val_list={data / 'val.csv'}",
        *args.overrides,
    ]

    results = {}
    for name, enabled in (("baseline", "false"), ("multigrid", "true")):
        if args.only not in (None, name):
            continue
        cfg = load_config("demo", [*common, f"multigrid.enabled={enabled}"])
        schedule = schedule_from_config(cfg)
        print(f"\n== {name}: {schedule.total_epochs} epochs, shapes "
              + ", ".join(f"{s.start_epoch}-{s.end_epoch}: {s.shape}" for s in schedule.segments), flush=True)
        started = time.perf_counter()
        summary = train(cfg, out / name)
        results[name] = {
            "wall_time_s": summary["wall_time_s"],
            "run_time_s": time.perf_counter() - started,
            "iterations": summary["iterations"],
            "epochs": summary["epochs"],
            "top1": summary["top1"],
            "clips_seen": summary["clips_seen"],
        }

    print("\nrun        wall (s)  total (s)  iterations  epochs  clips  val top-1")
    for name, r in results.items():
        print(f"{name:<10} {r['wall_time_s']:8.1f}  {r['run_time_s']:9.1f}  {r['iterations']:10d}  "
              f"{r['epochs']:6d}  {r['clips_seen']:5d}  {100 * r['top1']:8.1f}%")
    if len(results) == 2:
        base, mg = results["baseline"], results["multigrid"]
        print(f"speedup: {base['wall_time_s'] / mg['wall_time_s']:.2f}x wall-clock, "
              f"{base['iterations'] / mg['iterations']:.2f}x fewer iterations; "
              f"top-1 {100 * (mg['top1'] - base['top1']):+.1f} points")
    (out / "bench_multigrid.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
