"""Multi-dataset training (MultiTrain, NeurIPS 2022) against training on the small dataset alone.

Two synthetic datasets with overlapping concepts (``vidgrid synth``, 64² px, 32 frames): A, small,
with the 10 fine ``demo`` classes, 10 training videos each (``--a-train``: another number, in data
and run folders of their own, e.g. ``data/A-3`` and ``c-soft-3-seed0``), and B, 500 training
videos that none of A's are, of one of three kinds (``--b``): coarser labels or another look, the
two ways a second set overlaps a first that ``vidgrid synth`` writes:

- ``coarse``: 5 coarse classes that each merge some of A's (``--coarse demo``: ``horizontal`` =
  ``slide_left`` + ``slide_right``, ...), 100 training videos each, rendered from its fine classes
  in turn;
- ``negative``, ``soft``: A's 10 classes in another look (``--style negative``: a dark target on a
  light background; ``--style soft``: the target out of focus), 50 training videos each.

Each has its ``correspondence.json``; 20 validation videos per class.

Every arm starts from one checkpoint, as the supplement's runs start from Kinetics-trained ones
(§2): X3D-XS trained once on P, the 9 synthetic classes that neither A nor B has (``approach``,
``recede``, ``fade_in``, ``fade_out``, ``pulse``, ``rotate_cw``, ``rotate_ccw``, ``still_square``,
``still_triangle``; 100 training and 20 validation videos each), with the arms' recipe and budget.
Three arms on the same backbone and budget (batch 8, 2,000 optimizer steps: 16,000 training clips):

- (a) A alone (``classification``);
- (b) A and B jointly, a head each, no informative and no projection loss;
- (c) full MultiTrain (informative loss 0.1 × (25 · variance + 1 · covariance), projections 1.0).

The recipe is the demo's model, clips and optimizer without multigrid, where X3D-XS learns this
data: width 0.5, 8 frames at stride 4, 64² crops of a 64-80 px short side, SGD at 0.04 per 16 clips
with momentum, and a half-period cosine after a warm-up over the first tenth. The joint arms give
each dataset a linear head, as (a)'s classifier, and a 512-wide expander, and draw each A video 3
times an epoch (A is 300 of an epoch's 800 clips). The pretraining takes about 4 minutes on 2 CPU
cores and an arm about 5; the default five seeds take about 80 minutes, or about 45 in two
processes that share ``--out`` and split the seeds (one writes the data and pretrains, the other waits).
``model.pretrained=`` (empty) trains every arm from scratch instead.

Prints the top-1 on A and on B of each arm, and for (c) the share of the classes with a true
correspondence whose top-1 projection pair is that correspondence (coarse B: A → B a fine class's
coarse class, B → A any fine class a coarse class merges; another look: the class of the same
name), then the differences on A between the arms that ran, paired by seed, with the standard
error of the mean difference. Targets: (c) beats (a) on A by ≥ 3 points and is no worse than (b);
the true correspondence is the top projection pair for ≥ 90% of the classes.

    python benchmarks/bench_multitrain.py [KEY=VALUE ...] [--b coarse|negative|soft] [--out DIR]
                                          [--iterations N] [--a-train N] [--seeds S ...] [--arms a b c]

A run whose ``summary.json`` exists is not trained again; (a) and the pretraining are shared by
every kind of B. Extra ``KEY=VALUE`` overrides, anywhere on the line, apply to every arm.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
from pathlib import Path
from typing import Any

from vidgrid.cli import parse_with_overrides
from vidgrid.config import Config, load_config
from vidgrid.data.synthetic import CORRESPONDENCE_FILE, write_synthetic_dataset
from vidgrid.data.synthetic_classes import CLASSES, DEMO_CLASSES
from vidgrid.engine.projections import checkpoint_of, correspondence_found, projection_weights
from vidgrid.engine.trainer import train
from vidgrid.engine.weights import load_weights
from vidgrid.errors import VidgridError

ARMS = {"a": "(a) A alone", "b": "(b) A+B, separate heads", "c": "(c) MultiTrain"}
BATCH = 8
VIDEO = dict(workers=2)
A_TRAIN, A_VAL, B_VAL, P_TRAIN, P_VAL = 10, 20, 20, 100, 20
SECOND = {
    "coarse": dict(coarse="demo", train_per_class=100),
    "negative": dict(classes="demo", style="negative", train_per_class=50),
    "soft": dict(classes="demo", style="soft", train_per_class=50),
}
"""The kinds of B, as ``write_synthetic_dataset`` options: 500 training videos either way."""
PRETRAIN_CLASSES = tuple(c for c in CLASSES if c not in DEMO_CLASSES)
"""The pretraining set P: every synthetic class that neither A nor B (A's classes merged) has."""
PRETRAIN_DATA_SEED = 7
"""P's data seed, another than A's and B's (0)."""
A_SAMPLING_WEIGHT = 3.0
"""A's slots per video in a joint epoch: the small dataset is seen more often than its share."""
JOINT = ["multitrain.head=linear", "multitrain.hidden=512"]
"""Joint arms: a linear head per dataset, as (a)'s classifier, and a 512-wide expander (the backbone
has 0.3M parameters: 2048-wide MLPs would hold 50 times as many and double the step time)."""
WARMUP_SHARE = 0.1
"""Share of the epochs spent in the linear warm-up."""

COMMON = [
    "data.frames=8", "data.sampling_rate=4", "data.crop=64", "data.min_short=64", "data.max_short=80", "data.workers=1",
    "model.name=x3d_xs", "model.options={width_factor: 0.5, depth_factor: 1.0}", "model.dropout=0.0",
    "model.channels_last=true", "optim.name=sgd", "optim.lr=0.04", "optim.reference_batch=16", "optim.weight_decay=5e-5",
    "schedule.policy=cosine", "schedule.steps=[0]", "schedule.lrs=[1.0]", "schedule.warmup_start_factor=0.1",
    f"train.batch_size={BATCH}", "train.device=cpu", "train.eval_every=0", "train.log_every=20", "eval.clips=2", "eval.crops=1",
]


def a_suffix(a_train: int) -> str:
    """What names A's data and the runs that train on it when A has other than :data:`A_TRAIN` videos a class."""
    return "" if a_train == A_TRAIN else f"-{a_train}"


def write_data(out: Path, second: str, a_train: int) -> tuple[Path, Path, Path]:
    a, b, p = out / "data" / f"A{a_suffix(a_train)}", out / "data" / f"B-{second}", out / "data" / "P"
    if not (a / "val.csv").exists():
        write_synthetic_dataset(a, seed=0, classes="demo", train_per_class=a_train, val_per_class=A_VAL, **VIDEO)
    if not (b / "val.csv").exists():
        write_synthetic_dataset(b, seed=0, val_per_class=B_VAL, **SECOND[second], **VIDEO)
    if not (p / "val.csv").exists():
        write_synthetic_dataset(
            p, seed=PRETRAIN_DATA_SEED, classes=PRETRAIN_CLASSES, train_per_class=P_TRAIN, val_per_class=P_VAL, **VIDEO
        )
    return a, b, p


def budget(iterations: int, slots: int) -> list[str]:
    """Overrides for about ``iterations`` steps of :data:`BATCH` over ``slots`` clips an epoch, with the warm-up."""
    epochs = max(1, round(iterations * BATCH / slots))
    return [f"train.epochs={epochs}", f"schedule.warmup_epochs={WARMUP_SHARE * epochs:g}"]


def training_videos(root: Path) -> int:
    """The number of videos in a dataset's training list."""
    return len((root / "train.csv").read_text().splitlines())


def single_dataset(root: Path) -> list[str]:
    """Overrides for one dataset's training and validation lists."""
    return [f"data.train_list={root / 'train.csv'}", f"data.val_list={root / 'val.csv'}"]


def trained(cfg: Config, run: Path) -> dict[str, Any]:
    """The summary of ``run``, trained on ``cfg`` first unless its ``summary.json`` exists."""
    if not (run / "summary.json").exists():
        train(cfg, run, overwrite=True)
    return json.loads((run / "summary.json").read_text())


def pretrained(out: Path, p: Path, iterations: int) -> tuple[Path, dict[str, Any]]:
    """The checkpoint every arm starts from, the recipe trained once on P (run folder ``OUT/pretrain``), and its summary."""
    recipe = [*COMMON, *single_dataset(p), *budget(iterations, P_TRAIN * len(PRETRAIN_CLASSES)), "train.seed=0"]
    summary = trained(load_config(None, recipe), out / "pretrain")
    return checkpoint_of(out / "pretrain"), summary


def arm_config(arm: str, a: Path, b: Path, start: Path, iterations: int, seed: int, extra: list[str]) -> Config:
    a_videos = training_videos(a)
    if arm == "a":
        data = single_dataset(a)
        slots = a_videos
    else:
        datasets = [
            {"name": "A", "train_list": str(a / "train.csv"), "val_list": str(a / "val.csv"), "sampling_weight": A_SAMPLING_WEIGHT},
            {"name": "B", "train_list": str(b / "train.csv"), "val_list": str(b / "val.csv")},
        ]
        data = ["task.name=multitrain", f"datasets={json.dumps(datasets)}", *JOINT]
        if arm == "b":
            data += ["multitrain.informative_weight=0", "multitrain.projection_weight=0"]
        slots = round(a_videos * A_SAMPLING_WEIGHT) + training_videos(b)
    overrides = [*COMMON, *data, *budget(iterations, slots), f"model.pretrained={start}", f"train.seed={seed}", *extra]
    return load_config(None, overrides)


def top1(summary: dict[str, Any], dataset: str) -> float | None:
    if "datasets" in summary:
        return summary["datasets"][dataset]["top1"]
    return summary["top1"] if dataset == "A" else None


def run_folder(out: Path, arm: str, second: str, seed: int, a_train: int) -> Path:
    """An arm's run folder: (a) is the same for every kind of B."""
    name = "a" if arm == "a" else f"{arm}-{second}"
    return out / f"{name}{a_suffix(a_train)}-seed{seed}"


def correspondence_share(run: Path, b: Path) -> dict[str, tuple[int, int]]:
    """Per direction: (classes whose top projection target is a true correspondence, classes with one)."""
    a_to_b = json.loads((b / CORRESPONDENCE_FILE).read_text())["classes"]  # A's class -> B's class
    truth = {("A", "B"): {f: {c} for f, c in a_to_b.items()}, ("B", "A"): {}}
    for f, c in a_to_b.items():
        truth[("B", "A")].setdefault(c, set()).add(f)
    pairs = projection_weights(load_weights(checkpoint_of(run)))
    return {f"{s} to {t}": correspondence_found(weight, src, dst, truth[(s, t)]) for (s, t), (weight, src, dst) in pairs.items()}


def spread(values: list[float]) -> str:
    """``mean ± SD`` of per-seed figures (the SD is 0 for a single seed)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}%"


def paired(first: list[float], second: list[float]) -> str:
    """``first − second`` over the seeds both arms ran: the mean, each seed's difference and, with two
    or more seeds, the standard error of the mean difference (same seed, same data order: paired)."""
    diffs = [x - y for x, y in zip(first, second)]
    mean = statistics.mean(diffs)
    by_seed = " / ".join(f"{d:+.1f}" for d in diffs)
    error = f", standard error {statistics.stdev(diffs) / len(diffs) ** 0.5:.1f}" if len(diffs) > 1 else ""
    return f"{mean:+.1f} points (by seed {by_seed}{error})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--b", choices=list(SECOND), default="coarse", help="the kind of the second dataset, B")
    parser.add_argument("--out", default="bench-multitrain", help="folder for the datasets and the runs")
    parser.add_argument("--iterations", type=int, default=2000, help="optimizer steps of every arm (about)")
    parser.add_argument("--a-train", type=int, default=A_TRAIN, help="training videos per class of A")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="train.seed of each set of arms")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="run some of the arms")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every arm")
    args = parse_with_overrides(parser)
    try:
        run_all(Path(args.out), args.b, args.iterations, args.seeds, args.overrides, arms="".join(args.arms), a_train=args.a_train)
    except VidgridError as e:
        raise SystemExit(f"error: {e}") from None


def run_all(
    out: Path, second: str, iterations: int, seeds: list[int], extra: list[str], *, arms: str = "abc", a_train: int = A_TRAIN
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "setup.lock", "w") as lock:  # processes sharing ``out``: one writes and pretrains, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        a, b, p = write_data(out, second, a_train)
        start, done = pretrained(out, p, iterations)
    print(f"B: {second}; pretraining on P: {done['iterations']} iterations, {done['wall_time_s']:.0f} s, top-1 P {100 * done['top1']:.1f}%", flush=True)
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    shares = []
    for seed in seeds:
        for arm in arms:
            summary = trained(arm_config(arm, a, b, start, iterations, seed, extra), run_folder(out, arm, second, seed, a_train))
            results[arm].append(summary)
            print(f"({arm}) seed {seed}: {summary['iterations']} iterations, {summary['wall_time_s']:.0f} s, top-1 A "
                  f"{100 * top1(summary, 'A'):.1f}%" + (f", B {100 * top1(summary, 'B'):.1f}%" if arm != "a" else ""), flush=True)
        if "c" in arms:
            shares.append(correspondence_share(run_folder(out, "c", second, seed, a_train), b))
    print(f"\n{'arm':<26} {'top-1 A':>15} {'top-1 B':>15}  (mean ± SD over seeds {seeds})")
    on_a = {arm: [100 * top1(s, "A") for s in results[arm]] for arm in arms}
    for arm in arms:
        on_b = spread([100 * top1(s, "B") for s in results[arm]]) if arm != "a" else "-"
        print(f"{ARMS[arm]:<26} {spread(on_a[arm]):>15} {on_b:>15}")
    per_direction = {d: [sum(share[d][i] for share in shares) for i in (0, 1)] for d in (shares[0] if shares else [])}
    for direction, (f, n) in per_direction.items():
        print(f"true correspondence is the top projection pair, {direction}: {f}/{n} classes")
    if shares:
        found, having = (sum(counts[i] for counts in per_direction.values()) for i in (0, 1))
        print(f"correspondences found: {found}/{having} = {100 * found / max(having, 1):.0f}% (target >= 90%)")
    for first, second, target in (("c", "a", "; target >= +3.0"), ("c", "b", "; target >= 0"), ("b", "a", "")):
        if first in arms and second in arms:
            print(f"({first}) - ({second}) on A: {paired(on_a[first], on_a[second])}{target}")


if __name__ == "__main__":
    main()
