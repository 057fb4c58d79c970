"""A tiny sibling run on ``vidgrid synth --boxes`` data: both heads' losses go down,
both best checkpoints are written, the summary holds top-1, mean IoU and each head's best epoch, and
``predict`` prints the class and the box."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.engine.conftest import tiny_overrides
from vidgrid.cli import main
from vidgrid.config import load_config
from vidgrid.data.synthetic import write_synthetic_dataset
from vidgrid.engine import trainer
from vidgrid.engine.build import build_model, load_split
from vidgrid.engine.evaluate import eval_dataset_from_config
from vidgrid.engine.device import normalize_clip
from vidgrid.engine.weights import load_weights, model_from_weights
from vidgrid.errors import ConfigError
from vidgrid.tasks import task_for
from vidgrid.tasks.boxes import giou_loss, l1_box_loss


@pytest.fixture(scope="module")
def box_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_boxes")
    write_synthetic_dataset(root, seed=0, classes="slide_left,slide_right,grow,shrink", train_per_class=5,
                            val_per_class=2, frames=16, width=32, height=32, boxes=True, workers=1)
    return root


def head_losses(model, task, cfg) -> tuple[float, float]:
    """Cross-entropy and GIoU + L1 box loss of ``model`` on the training videos' centre test views."""
    dataset = eval_dataset_from_config(cfg, load_split(cfg, "train"), task)
    views, targets = zip(*[dataset[i][:2] for i in range(len(dataset))])
    clips = normalize_clip(torch.stack(views)[:, 0], cfg.data.mean, cfg.data.std)
    targets = torch.stack(targets)[:, 0]  # (N, 12): class, box, visible, side, frame, window
    with torch.no_grad():
        outputs = model.eval()(clips)
    k, visible = task.num_outputs, targets[:, 5] > 0
    ce = torch.nn.functional.cross_entropy(outputs[:, :k], targets[:, 0].long())
    box = giou_loss(outputs[visible, k:], targets[visible, 1:5]) + l1_box_loss(outputs[visible, k:], targets[visible, 1:5])
    return float(ce), float(box)


@pytest.mark.slow
def test_tiny_sibling_run_lowers_both_losses_and_keeps_a_best_checkpoint_per_head(box_data, tmp_path, capsys):
    cfg = load_config(None, tiny_overrides(
        box_data, f"data.boxes={box_data / 'boxes.csv'}", "task.name=sibling", "train.batch_size=4",
        "train.epochs=24", "train.eval_every=4", "eval.crops=3", "data.flip=true",
    ))
    task = task_for("sibling", load_split(cfg, "train"), cfg)
    torch.manual_seed(cfg.train.seed)
    before = head_losses(task.attach(build_model(cfg, num_classes=task.num_outputs)), task, cfg)

    summary = trainer.train(cfg, tmp_path / "run")
    folder = tmp_path / "run" / "checkpoints"
    assert (folder / "best-top1.pt").is_file() and (folder / "best-iou.pt").is_file()
    assert not (folder / "best.pt").exists()
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0 <= written["iou"] <= 1 and 0 <= written["top1"] <= 1 and written["task"] == "sibling"
    assert set(written["best_epochs"]) == {"top1", "iou"}
    assert written["best"]["metric"] == "top1" and written["best"]["checkpoint"].endswith("best-top1.pt")
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len(rows[0]["boxes"]) == 3  # one box per test crop

    model, trained_task, _ = model_from_weights(load_weights(summary["checkpoint"]))
    after = head_losses(model, trained_task, cfg)
    assert after[0] < before[0] and after[1] < before[1], (before, after)

    video = load_split(cfg, "val").samples[0].path
    assert main(["predict", str(video), "--checkpoint", str(folder / "best-iou.pt"), "--figures", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "box (x1, y1, x2, y2) in crop fractions:" in out and f"written: {tmp_path / 'fig' / video.stem}.png" in out
    assert (tmp_path / "fig" / f"{video.stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_localize_recipe_trains_the_sibling_task_with_multigrid():
    cfg = load_config("demo_localize")
    assert cfg.task.name == "sibling" and cfg.multigrid.enabled and cfg.data.boxes == "data/boxes.csv"
    assert (cfg.train.mixup_alpha, cfg.train.cutmix_alpha) == (0.0, 0.0)  # box targets cannot be mixed

    def regime(c):  # the demo's multigrid regime, which the robustness suite measured
        return c.multigrid, c.schedule, c.optim, c.train.epochs, c.data.cache_gb

    assert regime(cfg) == regime(load_config("demo"))


@pytest.mark.parametrize(("override", "message"), [
    ("data.rand_augment=true", "'data.rand_augment': the sibling task's boxes do not follow"),
    ("train.mixup_alpha=0.8", "the sibling task's targets cannot be mixed"),
])
def test_augmentations_that_cannot_carry_boxes_are_refused(box_data, tmp_path, override, message):
    cfg = load_config(None, tiny_overrides(box_data, f"data.boxes={box_data / 'boxes.csv'}", "task.name=sibling", override))
    with pytest.raises(ConfigError, match=message):
        trainer.train(cfg, tmp_path / "run")


def test_a_sibling_run_on_data_without_boxes_is_refused(box_data, tmp_path):
    cfg = load_config(None, tiny_overrides(box_data, "task.name=sibling"))  # no data.boxes: the lists carry none
    with pytest.raises(ConfigError, match=r"^'data.train_list' = '.*train.csv': no video has a box, which the sibling task learns"):
        trainer.train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
