"""Bad input everywhere a user can give it: one line, exit code 2, no traceback unless
``--debug``; and ``vidgrid predict`` on a video a tiny trained model learned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidgrid.cli import main
from vidgrid.config import load_config, save_config
from vidgrid.engine.checkpoint import list_checkpoints
from vidgrid.engine.trainer import train
from vidgrid.errors import ConfigError
from vidgrid.models import create_model
from vidgrid.models.x3d import X3D


def one_error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; it must exit with 2 and print exactly one ``error: ...`` line on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def train_args(tiny_args, tmp_path):
    """``train_args(*overrides)``: ``vidgrid train`` argv of the tiny recipe into ``tmp_path/run``."""
    return lambda *extra: ["train", "demo", *tiny_args(*extra), "--out", str(tmp_path / "run")]


def test_negative_learning_rate(capsys, train_args):
    assert "'optim.lr' = -0.1: expected a positive number" in one_error_line(capsys, train_args("optim.lr=-0.1"))


def test_config_typo_names_the_key(capsys, train_args):
    assert "unknown config key 'optim.lrate'" in one_error_line(capsys, train_args("optim.lrate=0.1"))


def test_crop_not_divisible_where_the_model_needs_it(capsys, train_args, monkeypatch):
    monkeypatch.setattr(X3D, "crop_multiple", 16)  # as a patch-embedding model would require
    line = one_error_line(capsys, train_args("data.crop=40"))
    assert "'data.crop'" in line and "needs a crop divisible by 16" in line


def test_frames_fewer_than_the_temporal_kernel(capsys, train_args, tmp_path):
    cfg = load_config(None, train_args("model.name=mvitv2_s_16x4", "data.frames=1")[2:-2])
    cfg.model.options = {}  # the tiny X3D options do not apply to MViT
    save_config(cfg, tmp_path / "mvit.yaml")
    line = one_error_line(capsys, ["train", str(tmp_path / "mvit.yaml"), "--out", str(tmp_path / "run")])
    assert "mvitv2_s_16x4 needs at least 2 frames" in line


def test_unknown_model_lists_the_valid_ones(capsys, train_args):
    line = one_error_line(capsys, train_args("model.name=x3d_q"))
    assert "unknown model 'x3d_q'" in line and "x3d_s" in line and "mvitv2_b_32x3" in line


@pytest.mark.parametrize("content", [b"", b"\xf4\x90\x80\x80 not text \xff"], ids=["empty", "binary"])
def test_empty_or_unreadable_annotation_file(capsys, train_args, tmp_path, content):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    assert str(bad) in one_error_line(capsys, train_args(f"data.train_list={bad}"))


def test_missing_annotation_file_and_data_root(capsys, train_args, tmp_path):
    assert "not found" in one_error_line(capsys, train_args(f"data.train_list={tmp_path / 'nope.csv'}"))
    line = one_error_line(capsys, train_args(f"data.root={tmp_path / 'videos'}"))
    assert "'data.root'" in line and "does not exist" in line


def test_checkpoint_of_another_architecture_names_the_keys(capsys, train_args, tmp_path):
    other = create_model("x3d_xs", num_classes=10, width_factor=0.5, depth_factor=1.0)  # deeper stages
    state = {"model": other.state_dict(), "config": {}, "classes": [], "epoch": 0, "iteration": 0, "train": {}}
    torch.save(state, tmp_path / "other.pt")
    line = one_error_line(capsys, train_args() + ["--resume", str(tmp_path / "other.pt")])
    assert "other.pt: weights do not fit the X3D model" in line and "unexpected" in line and "res3.1." in line


def test_truncated_checkpoint_is_one_line(capsys, tmp_path):
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    line = one_error_line(capsys, ["predict", str(tmp_path / "v.mp4"), "--checkpoint", str(tmp_path / "cut.pt")])
    assert "cut.pt: not a readable checkpoint" in line


def test_debug_shows_the_traceback(train_args):
    with pytest.raises(ConfigError, match="optim.lr"):
        main(["--debug", *train_args("optim.lr=-1")])


@pytest.mark.slow
def test_predict_names_the_class_a_tiny_model_learned(capsys, synthetic_data, tiny_config, tmp_path):
    """Two classes told apart by motion (a shape sliding right vs. standing still)."""
    lines = [line for line in (synthetic_data / "train.csv").read_text().splitlines() if "slide_right" in line or "still_disc" in line]
    relabelled = [f"{line.split()[0]} {int('still_disc' in line)}" for line in lines]
    data = tmp_path / "two"
    data.mkdir()
    (data / "list.csv").write_text("".join(f"{synthetic_data / line.split()[0]} {line.split()[1]}\n" for line in relabelled))
    (data / "classes.txt").write_text("slide_right\nstill_disc\n")
    cfg = tiny_config(f"data.train_list={data / 'list.csv'}", f"data.val_list={data / 'list.csv'}",
                      "train.batch_size=4", "train.epochs=30", "train.eval_every=0", "optim.lr=0.005",
                      "train.deterministic=true")
    summary = train(cfg, tmp_path / "run")
    assert summary["top1"] >= 0.75  # it learned (at least three of) its four videos
    checkpoint = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    capsys.readouterr()

    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    learned = next(row for row in rows if row["correct"])
    video, label = Path(learned["path"]), learned["label"]
    assert main(["predict", str(video), "--checkpoint", str(checkpoint), "--json", "--top", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    top = result["predictions"][0]["top"]
    assert top[0]["class"] == label and top[0]["score"] > top[1]["score"]
    assert main(["predict", str(video), "--checkpoint", str(checkpoint)]) == 0
    assert f"1. {label}" in capsys.readouterr().out
