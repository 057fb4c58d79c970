from pathlib import Path
from typing import Any

import pytest
import torch

from vidgrid.config import Config
from vidgrid.engine import demo


def run_demo_capturing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, cuda: bool, cores: int) -> Config:
    """``vidgrid demo`` up to its training call, on a machine with or without CUDA; the config it trains."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.json").write_text("{}")  # the dataset is there already
    captured: dict[str, Any] = {}

    def fake_train(cfg: Config, out: Path, **_: Any) -> dict[str, Any]:
        captured["cfg"] = cfg
        return {"top1": 1.0, "videos": 1, "checkpoint": str(out / "ckpt.pt")}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(demo, "available_cores", lambda: cores)
    monkeypatch.setattr(demo, "train", fake_train)
    assert demo.run_demo(tmp_path) == 0
    return captured["cfg"]


def test_demo_keeps_its_recipe_on_a_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = run_demo_capturing(monkeypatch, tmp_path, cuda=False, cores=16)
    assert cfg.model.channels_last and cfg.data.workers == 1
    assert cfg.data.train_list == str(tmp_path / "data" / "train.csv")


def test_demo_on_a_gpu_trains_channels_first_with_more_loader_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = run_demo_capturing(monkeypatch, tmp_path, cuda=True, cores=6)
    assert not cfg.model.channels_last and cfg.data.workers == 5  # every core but the trainer's
    assert cfg.multigrid.enabled and cfg.model.name == "x3d_xs"  # the rest is the recipe's
    assert "on a GPU: model.channels_last=false data.workers=5" in capsys.readouterr().out
    assert demo.gpu_overrides(64)[-1] == "data.workers=8"  # each worker caches the decoded videos
    assert demo.gpu_overrides(1)[-1] == "data.workers=1"
