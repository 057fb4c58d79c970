"""Multi-view evaluation, the predictions file and confusion PNG, `vidgrid eval` and `vidgrid predict`.

A tiny colour classifier stands in for a trained network: class k = the video's dominant colour
channel, so a correct pipeline (decode, views, normalisation, averaging) scores 100%.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vidgrid.cli import main
from vidgrid.config import config_to_dict, load_config
from vidgrid.data.encode import write_video
from vidgrid.engine.evaluate import ViewScores, collect_scores, report, score_views
from vidgrid.models import registry
from vidgrid.tasks.classification import Classification
from vidgrid.tasks.multi_label import MultiLabelClassification

CLASSES = ["red", "green", "blue"]
SINGLE, MULTI = Classification(CLASSES), MultiLabelClassification(CLASSES)
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


class ColourNet(nn.Module):
    """logits = 10 · mean normalised colour per channel (a 'trained' 3-class colour classifier)."""

    default_input = (3, 4, 32, 32)
    min_frames, frames_multiple, crop_multiple = 1, 1, 1

    def __init__(self, num_classes: int = 3, dropout: float | None = None, drop_path: float | None = None) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)
        with torch.no_grad():
            self.head.weight.copy_(10 * torch.eye(num_classes, 3))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3, 4)))  # (B, C, T, H, W) -> (B, C) -> (B, K)

    def no_weight_decay(self) -> set[str]:
        return set()


def test_multiview_average_is_mean_of_per_view_softmax():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 4 * 4, 5))
    views = torch.randint(0, 256, (2, 6, 3, 2, 4, 4), dtype=torch.uint8)  # (B, V, C, T, H, W)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)  # per channel, so a channel mix-up shows

    def standardised(view: torch.Tensor) -> torch.Tensor:  # pixels scaled to [0, 1], then per channel
        return (view.float() / 255 - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)

    got = score_views(model, views, Classification(list("abcde")), mean=mean, std=std, clips_per_forward=4)
    per_view = torch.stack([torch.softmax(model(standardised(views[:, v])), -1) for v in range(6)], 1)
    assert torch.allclose(got, per_view.mean(1), atol=1e-5)
    assert torch.allclose(got.sum(1), torch.ones(2))
    # multi-label (Charades): max over views of the per-class sigmoid
    multi = score_views(model, views, MultiLabelClassification(list("abcde")), mean=mean, std=std)
    sig = torch.stack([torch.sigmoid(model(standardised(views[:, v]))) for v in range(6)], 1)
    assert torch.allclose(multi, sig.amax(1), atol=1e-5)


def _coloured_views(labels: list[int], views: int = 2) -> torch.Tensor:
    out = torch.full((len(labels), views, 3, 2, 8, 8), 20, dtype=torch.uint8)
    for i, label in enumerate(labels):
        out[i, :, label] = 230
    return out


def test_collect_skips_broken_and_report_writes_files(tmp_path):
    labels = [0, 1, 2, 2, 1]
    views = _coloured_views(labels)
    index = torch.tensor([0, 1, 2, -1, 4])  # sample 3 could not be decoded
    targets = torch.tensor([0, 1, 2, 2, 0])  # sample 4 is labelled red but looks green: one error
    loader = DataLoader(TensorDataset(views, targets, index), batch_size=2)
    model = ColourNet().train()
    result = collect_scores(model, loader, SINGLE, device=torch.device("cpu"), mean=MEAN, std=STD)
    assert model.training  # mode restored
    assert result.indices.tolist() == [0, 1, 2, 4] and result.scores.shape == (4, 3)
    paths = [f"v{i}.mp4" for i in range(5)]
    metrics, files = report(result, SINGLE, paths=paths, out_dir=tmp_path)
    assert files == [tmp_path / "predictions.jsonl", tmp_path / "confusion.png"]
    assert metrics["top1"] == pytest.approx(0.75) and metrics["top5"] == 1.0 and metrics["videos"] == 4
    assert metrics["mean_class_acc"] == pytest.approx((0.5 + 1 + 1) / 3)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == ["v0.mp4", "v1.mp4", "v2.mp4", "v4.mp4"]
    assert rows[3]["label"] == "red" and rows[3]["prediction"] == "green" and rows[3]["correct"] is False
    assert [c for c, _ in rows[0]["top5"]][0] == "red" and len(rows[0]["top5"]) == 3
    assert (tmp_path / "confusion.png").stat().st_size > 1000


def test_report_multilabel_has_map_and_no_confusion(tmp_path):
    result = ViewScores(
        scores=torch.tensor([[0.9, 0.1, 0.8], [0.2, 0.7, 0.1]]),
        targets=torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
        indices=torch.tensor([0, 1]),
    )
    metrics, _ = report(result, MULTI, paths=["a", "b"], out_dir=tmp_path)
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["top1"] == 1.0
    assert json.loads((tmp_path / "predictions.jsonl").read_text().splitlines()[0])["label"] == ["red", "blue"]
    assert not (tmp_path / "confusion.png").exists()


# --------------------------------------------------------------------------------------------------
# end to end: real videos, a checkpoint, the CLI


@pytest.fixture
def colour_run(tmp_path, monkeypatch):
    """Six 32×32 H.264 videos (two per colour), a val list, and a checkpoint of ColourNet."""
    monkeypatch.setitem(registry.MODELS, "colour_net", ColourNet)
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for k in range(6):
        frames = np.full((12, 32, 32, 3), 30, np.uint8)
        frames[..., k % 3] = 220
        write_video(data / f"v{k}.mp4", frames, 12)
        lines.append(f"v{k}.mp4 {k % 3}")
    (data / "val.txt").write_text("\n".join(lines) + "\n")
    (data / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    overrides = [f"data.val_list={data / 'val.txt'}", "model.name=colour_net", "data.frames=4", "data.sampling_rate=2",
                 "data.crop=16", "eval.clips=2", "eval.crops=3", "eval.crop=16", "eval.short_side=20", "data.workers=0", "train.device=cpu"]
    cfg = load_config(None, overrides)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": ColourNet().state_dict(), "config": config_to_dict(cfg), "classes": CLASSES,
                "task": "classification"}, ckpt)
    return data, ckpt, overrides


def test_eval_command(colour_run, tmp_path, capsys):
    data, ckpt, overrides = colour_run
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  name: colour_net\n")
    assert main(["eval", str(recipe), *overrides, "--checkpoint", str(ckpt), "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "6 videos × 6 views" in out and "top-1 100.0%" in out
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["top1"] == 1.0 and result["videos"] == 6 and result["skipped_videos"] == []
    assert (tmp_path / "eval" / "confusion.png").is_file()


def test_predict_command(colour_run, capsys):
    data, ckpt, _ = colour_run
    assert main(["predict", str(data / "v1.mp4"), str(data / "v5.mp4"), "--checkpoint", str(ckpt), "--top", "2"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[1].split()[:2] == ["1.", "green"] and table.splitlines()[4].split()[:2] == ["1.", "blue"]

    broken = data / "broken.mp4"
    broken.write_bytes(b"not a video")
    code = main(["predict", str(data / "v0.mp4"), str(broken), str(data / "nope.mp4"), "--checkpoint", str(ckpt), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    errors = captured.err.strip().splitlines()
    assert errors[0].startswith(f"error: {broken}: ") and errors[1] == f"error: {data / 'nope.mp4'}: file not found"
    doc = json.loads(captured.out)
    first = doc["predictions"][0]
    assert first["top"][0]["class"] == "red" and first["top"][0]["score"] > 0.9 and len(first["top"]) == 3
    assert "error" in doc["predictions"][1] and "error" in doc["predictions"][2]


def test_eval_errors_are_one_line(colour_run, tmp_path, capsys):
    data, ckpt, overrides = colour_run
    assert main(["eval", "x3d_s_kinetics", *overrides, "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.pt'}: checkpoint file not found"
    (data / "classes.txt").write_text("cat\ndog\nbird\n")  # the val list now names other classes
    assert main(["eval", "x3d_s_kinetics", *overrides, "--checkpoint", str(ckpt), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {ckpt}: its 3 classes (red, green, blue, ...) do not match") and "\n" not in err
