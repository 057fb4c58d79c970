"""Sibling heads on the synthetic data: the shape of the practitioner's RandomResizedCrop vs
RandomRescale table ("Cls Acc", "Reg MAE") and of the negative-transfer note.

    python benchmarks/bench_sibling.py [KEY=VALUE ...] [--out DIR] [--classes demo] [--train-per-class 100] [--val-per-class 20]
                                       [--size 64] [--epochs 40] [--eval-every 2] [--patience 5] [--seed 0]
                                       [--models sibling cls-only loc-only sibling+early-stop]
                                       [--augmentations ResizeCrop RescaleCrop]

For RandomResizedCrop (``data.spatial_sampling=resized_crop``) and for RandomRescale + crop
(``rescale_crop``), trains with the same budget (``configs/demo_localize.yaml``, multigrid on; by
default the demo's data size and budget, 40 baseline epochs = 60 multigrid epochs, with the recipe's
LR stages and warm-up scaled to ``--epochs``; validation every ``--eval-every`` epochs):

- the sibling model (both heads, the recipe's loss weights, full gradients into the backbone);
- classification only: the same network with the box loss weight and gradient scale at 0;
- localisation only: the same network with the classification loss weight and gradient scale at 0;
- the sibling model with per-head early stop (``task.patience``).

and prints, per run, the validation top-1, mean IoU, box MAE (pixels of the test crop) at the end
and each head's best epoch, then writes them to ``DIR/bench_sibling.json``. Extra ``KEY=VALUE``
overrides, anywhere on the line, apply to every run. The data set (``vidgrid synth --boxes``) is
written once under ``DIR/data``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vidgrid.cli import parse_with_overrides
from vidgrid.config import load_config
from vidgrid.data.synthetic import write_synthetic_dataset
from vidgrid.engine import trainer

AUGMENTATIONS = {"ResizeCrop": "resized_crop", "RescaleCrop": "rescale_crop"}
MODELS = {
    "sibling": [],
    "cls-only": ["task.box_weight=0", "task.box_grad_scale=0"],
    "loc-only": ["task.cls_weight=0", "task.cls_grad_scale=0"],
    "sibling+early-stop": ["task.patience={patience}"],
}


def run_one(data: Path, out: Path, spatial: str, extra: list[str], args: argparse.Namespace) -> dict:
    recipe = load_config("demo_localize")
    stretch = args.epochs / recipe.train.epochs  # the recipe's LR stages and warm-up, scaled to --epochs
    stages = {round(s * stretch): lr for s, lr in zip(recipe.schedule.steps, recipe.schedule.lrs)}
    steps, lrs = list(stages), list(stages.values())
    overrides = [
        f"data.train_list={data / 'train.csv'}", f"data.val_list={data / 'val.csv'}", f"data.boxes={data / 'boxes.csv'}",
        f"data.crop={args.size}", f"data.min_short={args.size}", f"data.max_short={round(args.size * 1.25)}",
        f"data.spatial_sampling={spatial}", f"train.epochs={args.epochs}", f"schedule.steps={steps}", f"schedule.lrs={lrs}",
        f"schedule.warmup_epochs={recipe.schedule.warmup_epochs * stretch}", f"train.eval_every={args.eval_every}",
        f"train.seed={args.seed}", "train.log_every=50", *args.overrides, *[e.format(patience=args.patience) for e in extra],
    ]
    started = time.perf_counter()
    summary = trainer.train(load_config("demo_localize", overrides), out, overwrite=True)
    return {
        "top1": summary["top1"], "iou": summary["iou"], "box_mae": summary["box_mae"], "acc_iou50": summary["acc_iou50"],
        "best_epochs": summary["best_epochs"], "epochs": summary["epochs"], "wall_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench-sibling")
    parser.add_argument("--classes", default="demo")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--eval-every", type=int, default=2)
    parser.add_argument("--patience", type=int, default=5, help="evaluations without improvement before a head stops")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--augmentations", nargs="+", choices=list(AUGMENTATIONS), default=list(AUGMENTATIONS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every run (before each model's own)")
    args = parse_with_overrides(parser)
    out = Path(args.out)
    data = out / "data"
    if not (data / "boxes.csv").is_file():
        write_synthetic_dataset(data, seed=args.seed, classes=args.classes, train_per_class=args.train_per_class,
                                val_per_class=args.val_per_class, width=args.size, height=args.size, boxes=True)
    results = {}
    for augmentation, spatial in ((a, AUGMENTATIONS[a]) for a in args.augmentations):
        for model, extra in ((m, MODELS[m]) for m in args.models):
            key = f"{augmentation}/{model}"
            results[key] = run_one(data, out / "runs" / key.replace("/", "-"), spatial, extra, args)
            r = results[key]
            print(f"{key:32s} top-1 {100 * r['top1']:5.1f}%  IoU {r['iou']:.3f}  box MAE {r['box_mae']:5.2f} px  "
                  f"IoU>=0.5 {100 * r['acc_iou50']:5.1f}%  best epochs {r['best_epochs']}  {r['wall_s']:.0f} s", flush=True)
    budget = {k: v for k, v in vars(args).items() if k != "out"}
    (out / "bench_sibling.json").write_text(json.dumps({"budget": budget, "results": results}, indent=2) + "\n")
    print(f"written: {out / 'bench_sibling.json'}")


if __name__ == "__main__":
    main()
