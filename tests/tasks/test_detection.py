"""The detection task: targets through the clip transforms, the RoI network on every backbone
family, the loss, metrics and summary, and a tiny run that learns and reports frame-mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidgrid.data.annotations import Sample
from vidgrid.data.boxes import ClipView
from vidgrid.data.formats import Keyframe
from vidgrid.models import create_model
from vidgrid.tasks import task_class
from vidgrid.tasks.detection import LEAD, MAX_BOXES, ROI, TRUTH, Detection, DetectionNetwork, token_map

CLASSES = ["walk", "jump", "wave"]
BOX = (0.25, 0.5, 0.5, 1.0)


def keyframe_sample(rois=((BOX, (0, 2)),), truth=((BOX, (0, 2)),)) -> Sample:
    return Sample(Path("v.mp4"), -1, (0, 2), keyframe=Keyframe(2.0, tuple(truth), tuple(rois)))


def test_registered():
    task = task_class("detection")(CLASSES)
    assert task.best_checkpoints() == {"map": "best.pt"} and task.box_inputs and not task.mixable


def test_target_rows_follow_crop_and_flip():
    task = Detection(CLASSES)
    # source 200x100 (w x h); the view cut x 50..150, y 0..100 into 64x64 and mirrored
    view = ClipView(10.0, (50.0, 0.0, 150.0, 100.0), (64, 64), flip=True, frame_size=(100, 200))
    target = task.clip_target(keyframe_sample(), [view])
    assert target.shape == (1, MAX_BOXES, LEAD + 3)
    roi, truth = target[0, 0], target[0, 1]
    # box x 50..100 px -> 0..50 in the window -> fractions 0..0.5 -> mirrored 0.5..1.0; y 50..100 -> 0.5..1.0
    assert roi[:LEAD].tolist() == pytest.approx([ROI, 0.5, 0.5, 1.0, 1.0, 2.0, 64, 64])
    assert roi[LEAD:].tolist() == [1.0, 0.0, 1.0] and truth[0] == TRUTH
    assert target[0, 2:, 0].abs().sum() == 0  # padding


def test_a_box_outside_the_crop_is_dropped():
    view = ClipView(0.0, (120.0, 0.0, 200.0, 80.0), (32, 32), frame_size=(100, 200))
    target = Detection(CLASSES).clip_target(keyframe_sample(), [view])
    assert target[0, :, 0].abs().sum() == 0


def tiny(name: str):
    torch.manual_seed(0)
    options = {
        "x3d_xs": {"width_factor": 0.5, "depth_factor": 0.2},
        "slowfast_r50_4x16": {"width": 16, "stage_depths": (1, 1, 1, 1)},
        "i3d_r50_8x8": {"width": 16, "stage_depths": (1, 1, 1, 1)},
        "mvitv2_s_16x4": {"embed_dim": 16, "num_heads": 1, "depths": (1, 1, 1, 1)},
    }[name]
    return create_model(name, num_classes=3, **options)


@pytest.mark.parametrize("name", ["x3d_xs", "slowfast_r50_4x16", "i3d_r50_8x8", "mvitv2_s_16x4"])
def test_network_on_every_backbone_family(name):
    task = Detection(CLASSES)
    net = task.attach(tiny(name))
    assert isinstance(net, DetectionNetwork)
    clips = torch.randn(2, 3, 8, 64, 96)  # not square: the whole-frame test input
    views = [ClipView(4.0, (0.0, 0.0, 96.0, 64.0), (64, 96), frame_size=(64, 96))]
    targets = torch.stack([task.clip_target(keyframe_sample(), views), task.clip_target(keyframe_sample(rois=()), views)])
    out = task.forward(net, clips, targets)
    assert out.shape == (2, MAX_BOXES, 5 + 3)
    assert out[1, :, 5:].abs().sum() == 0 and out[0, 0, 5:].abs().sum() > 0  # only the rows to classify
    loss = task.loss(out, targets)
    loss.backward()
    assert torch.isfinite(loss) and net.head.fc.weight.grad.abs().sum() > 0


def test_boxes_pass_through_bf16_autocast_in_float32_beside_close_logits():
    task = Detection(CLASSES)
    net = task.attach(tiny("slowfast_r50_4x16")).eval()
    clips = torch.randn(2, 3, 8, 64, 96)
    views = [ClipView(4.0, (0.0, 0.0, 96.0, 64.0), (64, 96), frame_size=(64, 96))]
    targets = torch.stack([task.clip_target(keyframe_sample(), views), task.clip_target(keyframe_sample(rois=()), views)])
    targets[0, ..., :2, 1:5] = torch.tensor([0.3127, 0.1013, 0.7771, 0.9009])  # not exact in bf16's 8 bits
    with torch.no_grad():
        fp32 = task.forward(net, clips, targets)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = task.forward(net.to(memory_format=torch.channels_last_3d), clips, targets)
    boxes = targets.reshape(bf16.shape[0], -1, targets.shape[-1])[..., :5]
    assert bf16.dtype == torch.float32 and torch.equal(bf16[..., :5], boxes)
    assert (bf16[..., 5:] - fp32[..., 5:]).norm() / fp32[..., 5:].norm() < 0.05


def test_token_map_finds_the_grid():
    tokens = torch.arange(1 + 4 * 2 * 3, dtype=torch.float32).view(1, -1, 1)
    grid = token_map(tokens, (8, 64, 96))  # T/2 = 4, 64/32 = 2, 96/32 = 3
    assert grid.shape == (1, 1, 4, 2, 3) and grid[0, 0, 0, 0].tolist() == [1.0, 2.0, 3.0]


def test_metrics_summary_and_plot(tmp_path: Path):
    task = Detection(CLASSES)
    view = ClipView(0.0, (0.0, 0.0, 10.0, 10.0), (10, 10), frame_size=(10, 10))
    targets = torch.stack([task.clip_target(keyframe_sample(), [view])])
    outputs = torch.zeros(1, 1, MAX_BOXES, 5 + 3)
    outputs[0, 0, :, :5] = targets[0, 0, :, :5]
    outputs[0, 0, 0, 5:] = torch.tensor([4.0, -4.0, 4.0])
    scores = task.aggregate_views(outputs)
    metrics = task.metrics(scores, targets)
    assert metrics == {"map": pytest.approx(1.0), "ap/walk": pytest.approx(1.0), "ap/wave": pytest.approx(1.0)}
    assert task.summary_metrics({**metrics, "videos": 1}) == {"map": pytest.approx(1.0), "videos": 1,
                                                             "ap": {"walk": pytest.approx(1.0), "wave": pytest.approx(1.0)}}
    record = task.record(scores[0], targets[0], top=1)
    assert record["time"] == 2.0 and record["boxes"][0]["top"][0]["class"] in ("walk", "wave")
    assert record["truth"] == [{"box": [0.25, 0.5, 0.5, 1.0], "classes": ["walk", "wave"]}]
    assert [p.name for p in task.write_plots(tmp_path, scores, targets)] == ["ap.png"]


@pytest.mark.slow
def test_tiny_detection_run_lowers_its_loss_and_reports_map(tmp_path: Path, capsys):
    from vidgrid.config import load_config
    from vidgrid.data.synthetic_detection import write_detection_dataset
    from vidgrid.engine.trainer import train

    data = tmp_path / "data"
    write_detection_dataset(data, train_videos=8, val_videos=3, workers=1)
    overrides = [f"data.train_list={data / 'train.csv'}", f"data.val_list={data / 'val.csv'}",
                 f"data.train_proposals={data / 'train_proposals.csv'}", f"data.val_proposals={data / 'val_proposals.csv'}",
                 f"data.label_map={data / 'label_map.pbtxt'}", f"data.root={data / 'videos'}", "data.workers=0",
                 "train.epochs=12", "train.batch_size=8", "model.options={width_factor: 0.5, depth_factor: 0.2}",
                 "data.crop=64", "data.min_short=64", "data.max_short=72", "eval.short_side=72",
                 "optim.lr=0.05", "schedule.warmup_epochs=0", "train.log_every=1"]
    summary = train(load_config("demo_detect", overrides), tmp_path / "run")
    assert "16 training / 6 validation keyframes, 5 classes (detection)" in capsys.readouterr().err
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= saved["map"] <= 1 and set(saved["ap"]) <= {"walk", "jump", "wave", "breathe", "carry"} and saved["ap"]
    assert (tmp_path / "run" / "ap.png").is_file() and summary["task"] == "detection"
