"""The ``vidgrid`` command line: argument parsing only; each command calls one library function.

User mistakes raise :class:`~vidgrid.errors.VidgridError` anywhere below; they are printed here as a
single ``error: ...`` line with exit code 2 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from vidgrid import __version__
from vidgrid.errors import VidgridError, disk_full, one_line


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML recipe (a path, or the name of a packaged recipe such as 'demo')")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. optim.lr=0.2")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidgrid", description="Fast video model training with multigrid.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    parser.add_argument("--version", action="version", version=f"vidgrid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="make a synthetic dataset, train a small X3D with multigrid, evaluate")
    p.add_argument("--out", default="vidgrid-demo", help="folder for the dataset and the run (default: %(default)s)")

    p = sub.add_parser("train", help="train a model from a recipe")
    _config_args(p)
    p.add_argument("--out", default=None, help="run folder (default: runs/<recipe>-<time>)")
    p.add_argument("--resume", default=None, metavar="auto|CKPT", help="resume from the run folder's latest checkpoint or a file")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out that holds a run, deleting its checkpoints and logs")

    p = sub.add_parser("eval", help="multi-view evaluation of a checkpoint")
    _config_args(p)
    p.add_argument("--checkpoint", required=True, help="checkpoint file to evaluate")
    p.add_argument("--out", default=None, help="folder for predictions and plots (default: beside the checkpoint)")
    p.add_argument("--views", type=int, nargs="+", default=None, metavar="K",
                   help="K-Center testing for each K (e.g. 1 3 5 7 10): top-1 against GFLOPs per video, views.json")

    p = sub.add_parser("expand", help="grow an X3D from X2D step by step, one candidate per axis (X3D's expansion)")
    _config_args(p)
    p.add_argument("--steps", type=int, default=None, help="expansion steps (default: expand.steps of the recipe)")
    p.add_argument("--axes", nargs="+", default=None, metavar="AXIS",
                   help="axes to try: fast temporal spatial depth width bottleneck (default: expand.axes)")
    p.add_argument("--out", default=None, metavar="DIR", help="search folder (default: runs/expand-<recipe>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the search in --out; finished candidates are kept")
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="train a step's candidates in N child processes, one per GPU (default: %(default)s)")

    p = sub.add_parser("predict", help="top-5 classes of some videos (folders searched recursively), or their timelines")
    p.add_argument("videos", nargs="+", metavar="VIDEO_OR_FOLDER")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by vidgrid train")
    p.add_argument("--top", type=int, default=5, help="how many classes to list (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--window", type=float, default=None, metavar="S",
                   help="score sliding windows of S seconds and write a timeline per video (JSON, CSV, PNG)")
    p.add_argument("--stride", type=float, default=None, metavar="S", help="seconds between windows (default: --window)")
    p.add_argument("--out", default=None, metavar="DIR", help="folder for the timelines (default: timelines)")

    p.add_argument("--figures", default=None, metavar="DIR",
                   help="write the task's picture of each prediction there (sibling: centre frame with the box, "
                        "detection: each keyframe with its boxes and actions; PNG)")
    p.add_argument("--boxes", default=None, metavar="CSV",
                   help="detection: person boxes to classify, 'video_id,timestamp_s,x1,y1,x2,y2[,action_id],score' "
                        "(normalised; video_id = the video's file name without extension)")

    p.add_argument("--head", action="append", default=[], metavar="NAME",
                   help="a multi-dataset model's head (label space) to predict with; repeatable (default: every head)")

    p = sub.add_parser("inspect", help="look inside a trained model").add_subparsers(
        dest="inspect_command", required=True, metavar="SUBCOMMAND"
    )
    p = p.add_parser("projections", help="top (source, target) class pairs of each cross-dataset projection head")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="run folder (its best.pt) or checkpoint of a multi-dataset run")
    p.add_argument("--top", type=int, default=5, help="pairs per projection (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", default=None, metavar="DIR", help="folder for the heat maps (default: RUN/projections)")

    p = sub.add_parser("export", help="export a checkpoint to safetensors, ONNX or torch.export (pt2)")
    p.add_argument("checkpoint", help="checkpoint written by vidgrid train, or a file written by vidgrid convert")
    p.add_argument("--format", dest="fmt", choices=["safetensors", "onnx", "pt2"], required=True,
                   help="onnx needs the extra vidgrid[export]")
    p.add_argument("--out", default=None, metavar="DIR", help="export folder (default: <checkpoint>-<format> beside it)")

    p = sub.add_parser("schedule", help="print (and plot) the multigrid schedule of a recipe")
    _config_args(p)
    p.add_argument("--dataset-size", type=int, default=None, help="training videos (default: count the train list)")
    p.add_argument("--processes", type=int, default=1, help="training processes (default: %(default)s)")
    p.add_argument("--plot", default="schedule.png", help="PNG to write (default: %(default)s; '' = none)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    plot = sub.add_parser("plot", help="plots: Mixup's Beta(α, α), several runs' curves, the multigrid schedule").add_subparsers(
        dest="plot_command", required=True, metavar="PLOT"
    )
    p = plot.add_parser("mixup", help="densities of the Mixup/CutMix ratio λ ~ Beta(α, α)")
    p.add_argument("--alpha", type=float, nargs="+", default=[0.2, 0.8, 1.0, 2.0], help="α values (default: %(default)s)")
    p.add_argument("--out", default="mixup.png", help="PNG to write (default: %(default)s)")
    p = plot.add_parser("runs", help="loss, accuracy and LR of several runs against iterations and wall time")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by vidgrid train")
    p.add_argument("--out", default=".", metavar="DIR", help="folder for runs_*.png (default: the current folder)")
    p = plot.add_parser("views", help="top-1 against inference GFLOPs per video of several models (vidgrid eval --views)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="views.json files, their folders, or run folders with eval/views.json")
    p.add_argument("--out", default="views.png", help="PNG to write (default: %(default)s)")
    p = plot.add_parser("schedule", help="the multigrid schedule of a recipe (as vidgrid schedule)")
    _config_args(p)
    p.add_argument("--dataset-size", type=int, default=None, help="training videos (default: count the train list)")
    p.add_argument("--processes", type=int, default=1, help="training processes (default: %(default)s)")
    p.add_argument("--out", default="schedule.png", help="PNG to write (default: %(default)s)")

    p = sub.add_parser("profile", help="parameters, GMACs, memory and speed of models")
    p.add_argument("model", nargs="?", help="registered model name")
    p.add_argument("--all", action="store_true", help="profile every registered model")
    p.add_argument("--frames", type=int, default=None, help="input frames (default: the model's own)")
    p.add_argument("--crop", type=int, default=None, help="input crop (default: the model's own)")
    p.add_argument("--batch", type=int, default=1, help="clips per step for the speed and memory figures")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object per model")

    p = sub.add_parser("convert", help="convert a PySlowFast or PyTorchVideo checkpoint")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--from", dest="source", choices=["pyslowfast", "pytorchvideo", "resnet2d"], required=True,
                   help="resnet2d: inflate a 2-D ResNet (torchvision/timm keys) into C2D, I3D, Slow or SlowFast")
    p.add_argument("--model", required=True, help="registered model name the checkpoint belongs to")
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one per line in label order")
    p.add_argument("--inflate", choices=["mean", "center"], default="mean",
                   help="resnet2d: kernels repeated over time / k, or at the temporal centre (default: %(default)s)")

    p = sub.add_parser("synth", help="write the synthetic action dataset (H.264 MP4 + lists)")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", choices=["classification", "detection"], default="classification",
                   help="detection: actors doing several actions each, in the AVA formats (the per-class "
                        "counts are then videos per split)")
    p.add_argument("--train-per-class", type=int, default=None, help="training videos per class")
    p.add_argument("--val-per-class", type=int, default=None, help="validation videos per class")
    p.add_argument("--frames", type=int, default=None, help="frames per video")
    p.add_argument("--fps", type=int, default=None, help="frames per second")
    p.add_argument("--classes", default=None, metavar="PRESET|A,B,...",
                   help="class set: demo (default), appearance, direction, rotation, timing, motion, "
                        "or a comma-separated list of class names")
    p.add_argument("--size", default=None, metavar="N|WxH", help="frame size in pixels: N (square) or WxH, e.g. 128x96")
    p.add_argument("--distractors", type=int, default=None, help="most distractor dots per video (default: 2)")
    p.add_argument("--moving-distractors", type=float, default=None, metavar="P",
                   help="probability that a distractor drifts (default: 0.5)")
    p.add_argument("--boxes", action="store_true", default=None,
                   help="also write boxes.csv: the main object's box in every frame (for data.boxes)")
    p.add_argument("--coarse", default=None, metavar="PRESET|C=A+B,...",
                   help="write coarse classes that merge fine ones (demo, motion, or e.g. 'horizontal=slide_left+slide_right,"
                        "size=grow+shrink') and correspondence.json: a second dataset overlapping a fine one")
    p.add_argument("--style", default=None, metavar="plain|negative|soft",
                   help="how the frames look: plain (default), negative (every frame's negative) or soft (the target "
                        "out of focus); the last two also write correspondence.json: the same classes in another look")
    p.add_argument("--workers", type=int, default=None, help="parallel encoder processes")

    data = sub.add_parser("data", help="check or prepare a video dataset").add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND"
    )
    p = data.add_parser("check", help="open every video and report problems")
    p.add_argument("source", metavar="ROOT_OR_LIST")
    p.add_argument("--root", default=None, help="data root for relative paths (default: the list's folder)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--min-frames", type=int, default=1, help="shorter videos are reported (default: %(default)s)")
    p.add_argument("--write-clean", default=None, metavar="LIST", help="write the list without the bad videos")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = data.add_parser("prepare", help="re-encode videos for fast random access")
    p.add_argument("src", help="annotation list or folder per class")
    p.add_argument("dst", help="output folder (new videos and list)")
    p.add_argument("--root", default=None, help="data root for relative paths (default: the list's folder)")
    p.add_argument("--short-side", type=int, default=320, help="resize the short side to this (default: %(default)s)")
    p.add_argument("--keyint", type=int, default=16, help="frames between key frames (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _run(args) or 0
    except VidgridError as e:
        if args.debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as coreutils do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit flush
        return 141
    except OSError as e:  # a disk that fills up while writing logs or plots
        full = disk_full(e)
        if args.debug or full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        return 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return parse_with_overrides(build_parser(), argv)


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line whose ``KEY=VALUE`` overrides may stand anywhere, also after the options
    (``vidgrid eval CONFIG --checkpoint CKPT --views 1 3 data.frames=16``), and keep their order in
    ``overrides``; a command without overrides rejects them."""
    from vidgrid.config import split_overrides

    words, overrides = split_overrides(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(words)
    if overrides:
        if getattr(args, "overrides", None) is None:
            parser.error(f"unrecognized arguments: {' '.join(overrides)}")
        args.overrides = [*args.overrides, *overrides]
    return args


def _run(args: argparse.Namespace) -> int | None:
    cmd = args.command
    if cmd in ("train", "eval", "schedule", "expand") or (cmd == "plot" and args.plot_command == "schedule"):
        from vidgrid.config import load_config

        cfg = load_config(args.config, args.overrides)

    if cmd == "demo":
        from vidgrid.engine.demo import run_demo

        return run_demo(Path(args.out))
    if cmd == "train":
        from vidgrid.engine.stopping import exit_status
        from vidgrid.engine.trainer import train

        if args.resume == "auto" and not args.out:
            raise VidgridError("--resume auto: nothing to resume without --out (a new run folder would be made); give the run's --out")
        out = Path(args.out) if args.out else Path("runs") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        return exit_status(train(cfg, out, resume=args.resume, overwrite=args.overwrite))
    if cmd == "eval":
        from vidgrid.engine.evaluate import evaluate_checkpoint

        out = Path(args.out) if args.out else Path(args.checkpoint).parent / "eval"
        if args.views:
            from vidgrid.engine.views import evaluate_views

            evaluate_views(cfg, Path(args.checkpoint), out, args.views)
            return 0
        evaluate_checkpoint(cfg, Path(args.checkpoint), out)
        return 0
    if cmd == "expand":
        from vidgrid.engine.expand import expand_search

        if args.resume and not args.out:
            raise VidgridError("--resume: give the search's --out")
        out = Path(args.out) if args.out else Path("runs") / f"expand-{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        expand_search(cfg, out, steps=args.steps, axes=args.axes, resume=args.resume, parallel=args.parallel)
        return 0
    if cmd == "predict":
        from vidgrid.engine.predict import predict_command

        return predict_command([Path(v) for v in args.videos], Path(args.checkpoint), top=args.top, as_json=args.json,
                               window=args.window, stride=args.stride, out=Path(args.out) if args.out else None,
                               figures=Path(args.figures) if args.figures else None,
                               boxes=Path(args.boxes) if args.boxes else None, heads=args.head)
    if cmd == "inspect" and args.inspect_command == "projections":
        from vidgrid.engine.projections import inspect_projections_command

        return inspect_projections_command(Path(args.source), out=Path(args.out) if args.out else None, top=args.top,
                                           as_json=args.json)
    if cmd == "export":
        from vidgrid.engine.export import export_command

        return export_command(Path(args.checkpoint), args.fmt, Path(args.out) if args.out else None)
    if cmd == "schedule":
        from vidgrid.schedule_report import schedule_command

        return schedule_command(
            cfg, dataset_size=args.dataset_size, processes=args.processes, plot=args.plot or None, as_json=args.json
        )
    if cmd == "plot" and args.plot_command == "schedule":
        from vidgrid.schedule_report import schedule_command

        return schedule_command(cfg, dataset_size=args.dataset_size, processes=args.processes, plot=args.out, as_json=False)
    if cmd == "plot" and args.plot_command == "mixup":
        from vidgrid.engine.plots import mixup_command

        return mixup_command(args.alpha, Path(args.out))
    if cmd == "plot" and args.plot_command == "runs":
        from vidgrid.engine.plots import runs_command

        return runs_command([Path(r) for r in args.runs], Path(args.out))
    if cmd == "plot" and args.plot_command == "views":
        from vidgrid.engine.views import views_plot_command

        return views_plot_command([Path(r) for r in args.runs], Path(args.out))
    if cmd == "profile":
        from vidgrid.models.profile import profile_command

        return profile_command(
            args.model, all_models=args.all, frames=args.frames, crop=args.crop, batch=args.batch,
            device=args.device, as_json=args.json,
        )
    if cmd == "convert":
        from vidgrid.data.annotations import read_class_names
        from vidgrid.models.convert import convert_command

        classes = read_class_names(Path(args.classes)) if args.classes else None
        return convert_command(Path(args.src), Path(args.dst), source=args.source, model=args.model, classes=classes,
                               inflation=args.inflate)
    if cmd == "synth" and args.task == "detection":
        from vidgrid.data.synthetic_detection import synth_detection_command

        return synth_detection_command(Path(args.out_dir), seed=args.seed, **{k: getattr(args, k) for k in (
            "train_per_class", "val_per_class", "frames", "fps", "size", "workers", "classes", "boxes", "distractors",
            "moving_distractors")})
    if cmd == "synth":
        from vidgrid.data.synthetic import synth_command

        names = ("classes", "size", "train_per_class", "val_per_class", "frames", "fps", "distractors",
                 "moving_distractors", "boxes", "coarse", "style", "workers")
        options = {k: getattr(args, k) for k in names}
        return synth_command(Path(args.out_dir), seed=args.seed, **{k: v for k, v in options.items() if v is not None})
    if cmd == "data" and args.data_command == "check":
        from vidgrid.data.check import check_command

        return check_command(
            args.source, root=args.root, workers=args.workers, min_frames=args.min_frames,
            write_clean=args.write_clean, as_json=args.json,
        )
    if cmd == "data" and args.data_command == "prepare":
        from vidgrid.data.prepare import prepare_command

        return prepare_command(
            args.src, Path(args.dst), root=args.root, short_side=args.short_side, keyint=args.keyint,
            workers=args.workers,
        )
    raise AssertionError(f"unhandled command {cmd}")


if __name__ == "__main__":
    raise SystemExit(main())
