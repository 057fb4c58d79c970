"""Inference cost per video (X3D supplement §B, Fig. A.1): ``vidgrid eval --views`` and ``vidgrid plot views``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vidgrid.cli import main
from vidgrid.config import config_to_dict, load_config
from vidgrid.data.annotations import load_annotations
from vidgrid.engine.build import build_model
from vidgrid.models.x3d import X3D_CONFIGS, clip_gmacs


@pytest.fixture
def x2d_checkpoint(tiny_args: Callable[..., list[str]], synthetic_data: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """An (untrained) X2D checkpoint of the shared synthetic dataset and the overrides of its recipe."""
    overrides = tiny_args("model.name=x2d", "model.options={}", "data.frames=2", "data.crop=32")
    cfg = load_config(None, overrides)
    classes = list(load_annotations(cfg.data.val_list).classes)
    model = build_model(cfg, num_classes=len(classes))
    ckpt = tmp_path / "x2d.pt"
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "classes": classes, "task": "classification"}, ckpt)
    return ckpt, overrides


def test_eval_views_reports_top1_against_gflops_per_video(x2d_checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, overrides = x2d_checkpoint
    out = tmp_path / "eval"
    assert main(["eval", "demo", *overrides, "--checkpoint", str(ckpt), "--views", "1", "3", "5", "--out", str(out)]) == 0
    curve = json.loads((out / "views.json").read_text())
    per_view = clip_gmacs(replace(X3D_CONFIGS["x2d"], frames=2, crop=32), num_classes=10)
    assert curve["model"] == "x2d" and curve["input"] == [3, 2, 32, 32]
    assert curve["gflops_per_view"] == pytest.approx(per_view, abs=1e-5)
    assert [p["views"] for p in curve["points"]] == [1, 3, 5]
    assert [p["gflops"] for p in curve["points"]] == pytest.approx([per_view, 3 * per_view, 5 * per_view], abs=1e-5)
    for p in curve["points"]:  # each K is its own K-Center evaluation: K centre-crop clips per video
        evaluated = json.loads((out / f"views_{p['views']}" / "eval.json").read_text())
        assert evaluated["views"] == p["views"] and evaluated["top1"] == p["top1"]
    printed = capsys.readouterr().out
    assert "views  top-1   GFLOPs/video" in printed and "10 videos × 5 views" in printed

    other = tmp_path / "other"
    other.mkdir()
    (other / "views.json").write_text(json.dumps({**curve, "model": "x3d_s"}))
    png = tmp_path / "views.png"
    assert main(["plot", "views", str(out), str(other / "views.json"), "--out", str(png)]) == 0
    assert png.stat().st_size > 10_000


def test_views_errors_are_one_line(x2d_checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, overrides = x2d_checkpoint
    assert main(["eval", "demo", *overrides, "--checkpoint", str(ckpt), "--views", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: --views 0: expected integers >= 1 (clips per video)"
    assert main(["plot", "views", str(tmp_path / "nothing")]) == 2
    assert "no views.json (write one with vidgrid eval --views 1 3 5 7 10)" in capsys.readouterr().err
