"""``vidgrid predict VIDEO --boxes CSV``: each keyframe's boxes with their top actions, keyframe
pictures, and one-line errors for a missing or unwanted ``--boxes``."""

from __future__ import annotations

import json

import numpy as np
import torch

from vidgrid.cli import main
from vidgrid.config import config_to_dict, load_config
from vidgrid.data.encode import write_video
from vidgrid.engine.state import TrainState
from vidgrid.models import create_model
from vidgrid.tasks.detection import Detection

CLASSES = ["walk", "jump", "wave"]
OPTIONS = {"width_factor": 0.5, "depth_factor": 0.2}


def detection_checkpoint(folder):
    cfg = load_config(None, ["model.name=x3d_xs", f"model.options={json.dumps(OPTIONS)}", "data.frames=4", "data.sampling_rate=2",
                             "data.crop=32", "task.name=detection", "eval.clips=1", "eval.crops=0", "eval.short_side=32"])
    torch.manual_seed(0)
    net = Detection(CLASSES).attach(create_model("x3d_xs", num_classes=len(CLASSES), **OPTIONS))
    path = folder / "det.pt"
    torch.save({"model": net.state_dict(), "config": config_to_dict(cfg), "classes": CLASSES, "task": "detection",
                "train": {"state": TrainState().state_dict()}}, path)
    return path


def test_predict_boxes_prints_each_box_and_draws_keyframes(tmp_path, capsys):
    frames = np.random.default_rng(0).integers(0, 255, (24, 32, 48, 3), dtype=np.uint8)
    video = tmp_path / "clip1.mp4"
    write_video(video, frames, 8, keyint=8)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("clip1,1,0.1,0.1,0.5,0.9,0.9\nclip1,1,0.5,0.2,0.9,0.8,,0.4\nclip1,2,0.2,0.2,0.6,0.6,0.95\nother,1,0,0,1,1,0.9\n")
    ckpt = detection_checkpoint(tmp_path)
    assert main(["predict", str(video), "--checkpoint", str(ckpt), "--boxes", str(boxes), "--top", "2",
                 "--figures", str(tmp_path / "figs"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["predictions"][0]
    assert [k["time"] for k in result["keyframes"]] == [1.0, 2.0]
    first = result["keyframes"][0]["boxes"]
    assert [b["box"] for b in first] == [[0.1, 0.1, 0.5, 0.9], [0.5, 0.2, 0.9, 0.8]]  # every box, any score
    assert all(len(b["top"]) == 2 and b["top"][0]["class"] in CLASSES for b in first)
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["clip1_1s.png", "clip1_2s.png"]
    assert main(["predict", str(video), "--checkpoint", str(ckpt), "--boxes", str(boxes)]) == 0
    assert "clip1.mp4 at 1 s" in capsys.readouterr().out


def test_boxes_are_required_for_detection_and_named_when_missing(tmp_path, capsys):
    frames = np.zeros((16, 32, 32, 3), dtype=np.uint8)
    video = tmp_path / "v.mp4"
    write_video(video, frames, 8)
    ckpt = detection_checkpoint(tmp_path)
    assert main(["predict", str(video), "--checkpoint", str(ckpt)]) == 2
    assert "classifies given person boxes" in capsys.readouterr().err
    boxes = tmp_path / "b.csv"
    boxes.write_text("someone_else,1,0,0,1,1,0.9\n")
    assert main(["predict", str(video), "--checkpoint", str(ckpt), "--boxes", str(boxes)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"no boxes for video 'v' ({video})")
