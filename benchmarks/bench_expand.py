"""Progressive X3D expansion (``vidgrid expand``) on the synthetic dataset, on a laptop's CPU.

Writes the synthetic dataset (``vidgrid synth``, the demo's 10 classes at 64×64 px, 32 frames) if it
is not there, then runs a ``--steps``-step search (default 5) from X2D at half width and half
resolution (γ_w = γ_s = 0.5: crop 56) with the demo recipe at a tiny budget per candidate
(``--epochs`` baseline epochs, halved by the regularisation expansion; AdamW at 0.003, which leaves
the chance plateau within a few hundred iterations where the demo's SGD needs over a thousand;
baseline training, since a few epochs leave multigrid's long cycle no room). It prints each step's table, the wall time, and
checks that every chosen step's FLOPs are 1.7-2.3× the previous (exit 1 otherwise).
Target on 2 CPU cores: 5 steps in ≤ 45 minutes.

    python benchmarks/bench_expand.py [--out DIR] [--steps N] [--epochs N] [--train-per-class N] [KEY=VALUE ...]

A stopped benchmark continues where it stopped (the search runs with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vidgrid.config import load_config
from vidgrid.data.synthetic import write_synthetic_dataset
from vidgrid.engine.expand import TRACE_FILE, expand_search

LOW, HIGH = 1.7, 2.3
"""Allowed FLOPs ratio of each chosen step to the previous one."""


def bench_overrides(data: Path, epochs: int) -> list[str]:
    """The demo recipe at a tiny per-candidate budget on the data in ``data``."""
    return [
        f"data.train_list={data / 'train.csv'}", f"data.val_list={data / 'val.csv'}",
        "multigrid.enabled=false", f"train.epochs={epochs}", "schedule.policy=cosine", "schedule.steps=[0]",
        "schedule.lrs=[1.0]", "schedule.warmup_epochs=1", "optim.name=adamw", "optim.lr=0.003", "optim.weight_decay=0.0",
        "train.log_every=50", "expand.start_gammas={s: 0.5, w: 0.5}",
    ]


def ratio_failures(trace: dict) -> list[str]:
    """Steps whose chosen candidate's FLOPs are outside LOW-HIGH × the previous model's."""
    bad = []
    for step in trace["steps"]:
        chosen = next(c for c in step["candidates"] if c["axis"] == step["chosen"])
        ratio = chosen["gflops"] / step["from"]["gflops"]
        if not LOW <= ratio <= HIGH:
            bad.append(f"step {step['step']}: {step['chosen']} is {ratio:.2f}x the previous FLOPs")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-expand", help="folder for the data and the search")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12, help="recipe epochs (candidates train half)")
    parser.add_argument("--train-per-class", type=int, default=30)
    parser.add_argument("--val-per-class", type=int, default=10)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "data"
    if not (data / "meta.json").is_file():
        write_synthetic_dataset(data, train_per_class=args.train_per_class, val_per_class=args.val_per_class)
    cfg = load_config("demo", [*bench_overrides(data, args.epochs), *args.overrides])
    started = time.perf_counter()
    expand_search(cfg, out / "search", steps=args.steps, resume=True)
    wall = time.perf_counter() - started
    trace = json.loads((out / "search" / TRACE_FILE).read_text())
    bad = ratio_failures(trace)
    print(f"\n{len(trace['steps'])} steps in {wall / 60:.1f} min; FLOPs ratio check ({LOW}-{HIGH}x): "
          f"{'; '.join(bad) if bad else 'every step passes'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
