"""Action detection on the synthetic AVA-format data: frame-mAP@0.5 and wall time of the demo recipe
against a class-frequency baseline, and RoIAlign throughput (X3D supplement §A.1).

Writes the dataset (``vidgrid synth OUT/data --task detection``) if it is not there, trains
``configs/demo_detect.yaml`` on it and prints the validation frame-mAP@0.5 and training wall time,
next to the baseline that scores every test proposal with the training boxes' class frequencies
(the same boxes, so the difference is what the network learned about each box). Target on 2 CPU
cores: mAP@0.5 ≥ 0.7 in ≤ 15 minutes of training. Then RoIAlign (7×7, sampling ratio 2) forward +
backward throughput in boxes/s on the CPU, and on CUDA when there is one.

    python benchmarks/bench_detection.py [--out DIR] [--train-videos N] [--val-videos N] [--seed S] [--skip-train] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from vidgrid.config import Config, load_config
from vidgrid.data.synthetic_detection import write_detection_dataset
from vidgrid.engine.build import load_split
from vidgrid.engine.trainer import train
from vidgrid.tasks.frame_ap import FrameBoxes, frame_ap
from vidgrid.tasks.roi_align import roi_align

TARGET_MAP = 0.7
TARGET_MINUTES = 15.0


def data_overrides(data: Path) -> list[str]:
    return [f"data.train_list={data / 'train.csv'}", f"data.val_list={data / 'val.csv'}",
            f"data.train_proposals={data / 'train_proposals.csv'}", f"data.val_proposals={data / 'val_proposals.csv'}",
            f"data.label_map={data / 'label_map.pbtxt'}", f"data.root={data / 'videos'}"]


def frequency_baseline(cfg: Config) -> float:
    """frame-mAP@0.5 of scoring every test box with the training boxes' class frequencies."""
    train_ann, val_ann = load_split(cfg, "train"), load_split(cfg, "val")
    k = train_ann.num_classes
    counts = torch.zeros(k)
    boxes = 0
    for sample in train_ann.samples:
        for _, labels in sample.keyframe.truth:
            counts[list(labels)] += 1
            boxes += 1
    prior = counts / max(boxes, 1)
    frames = []
    for sample in val_ann.samples:
        kf = sample.keyframe
        detected = torch.tensor([box for box, _ in kf.rois], dtype=torch.float32).reshape(-1, 4)
        truth = torch.tensor([box for box, _ in kf.truth], dtype=torch.float32).reshape(-1, 4)
        labels = torch.zeros(len(kf.truth), k, dtype=torch.bool)
        for g, (_, classes) in enumerate(kf.truth):
            labels[g, list(classes)] = True
        frames.append(FrameBoxes(detected, prior.expand(len(detected), k), truth, labels))
    ap = frame_ap(frames, k)
    return sum(ap.values()) / len(ap)


def roi_align_throughput(device: torch.device, *, boxes: int = 256, repeats: int = 20) -> float:
    """Boxes per second through RoIAlign forward + backward on a (8, 192, 14, 14) feature map."""
    torch.manual_seed(0)
    features = torch.randn(8, 192, 14, 14, device=device, requires_grad=True)
    corners = torch.rand(boxes, 4, device=device) * 224
    rois = torch.cat([torch.randint(0, 8, (boxes, 1), device=device).float(),
                      corners[:, :2].minimum(corners[:, 2:]), corners[:, :2].maximum(corners[:, 2:]) + 1], dim=1)
    def step() -> None:
        roi_align(features, rois, output_size=7, spatial_scale=1 / 16).sum().backward()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return boxes * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-detection"))
    parser.add_argument("--train-videos", type=int, default=240)
    parser.add_argument("--val-videos", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0, help="the synthetic data's seed (vidgrid synth --seed)")
    parser.add_argument("--skip-train", action="store_true", help="only the baseline and RoIAlign figures")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    data = args.out / "data"
    if not (data / "meta.json").is_file():
        write_detection_dataset(data, seed=args.seed, train_videos=args.train_videos, val_videos=args.val_videos)
    cfg = load_config("demo_detect", [*data_overrides(data), *args.overrides])
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    baseline = frequency_baseline(cfg)
    print(f"baseline (class frequencies): frame-mAP@0.5 {baseline:.3f}")
    if not args.skip_train:
        start = time.perf_counter()
        summary = train(cfg, args.out / "run", overwrite=True)
        minutes = (time.perf_counter() - start) / 60
        ok = summary["map"] >= TARGET_MAP and summary["wall_time_s"] / 60 <= TARGET_MINUTES
        print(f"demo_detect: frame-mAP@0.5 {summary['map']:.3f} (AP {json.dumps({k: round(v, 3) for k, v in summary['ap'].items()})}); "
              f"training {summary['wall_time_s'] / 60:.1f} min ({minutes:.1f} min with evaluation), "
              f"{summary['iterations']} iterations; target mAP ≥ {TARGET_MAP} in ≤ {TARGET_MINUTES:g} min: "
              f"{'met' if ok else 'NOT met'}")
    for device in [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []):
        print(f"RoIAlign 7x7 fwd+bwd on {device}: {roi_align_throughput(device):,.0f} boxes/s "
              f"(threads {torch.get_num_threads()})")
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
