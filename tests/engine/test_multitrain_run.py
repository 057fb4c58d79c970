"""A two-dataset run end to end: trains, resumes bit-identically, evaluates per dataset; inspect and predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vidgrid.cli import main
from vidgrid.config import load_config, save_config
from vidgrid.data.synthetic import CORRESPONDENCE_FILE, write_synthetic_dataset
from vidgrid.engine.checkpoint import list_checkpoints, load_checkpoint
from vidgrid.engine.logging import read_metrics
from vidgrid.engine.trainer import train

from tests.engine.conftest import tiny_overrides


@pytest.fixture(scope="module")
def coarse_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 coarse classes merging the demo's × (2 train, 1 val) videos of 16 frames at 32×32 px."""
    root = tmp_path_factory.mktemp("coarse")
    write_synthetic_dataset(root, seed=0, coarse="demo", train_per_class=2, val_per_class=1, frames=16, width=32, height=32, workers=1)
    return root


def multitrain_config(fine: Path, coarse: Path, *extra: str):
    datasets = [
        {"name": "fine", "train_list": str(fine / "train.csv"), "val_list": str(fine / "val.csv")},
        {"name": "coarse", "train_list": str(coarse / "train.csv"), "val_list": str(coarse / "val.csv"),
         "temporal_sampling": "segment", "flip": False, "sampling_weight": 0.5, "loss": "sigmoid", "eval_clips": 2},
    ]
    single = [o for o in tiny_overrides(fine) if not o.startswith(("data.train_list", "data.val_list"))]
    return load_config(None, [*single, "task.name=multitrain", f"datasets={json.dumps(datasets)}", "multitrain.hidden=32",
                              "train.mixup_alpha=0.8", *extra])


def test_coarse_synthetic_dataset_states_its_correspondence(coarse_data):
    correspondence = json.loads((coarse_data / CORRESPONDENCE_FILE).read_text())
    assert correspondence["relation"] == "coarse"
    assert correspondence["classes"]["slide_left"] == correspondence["classes"]["slide_right"] == "horizontal"
    assert (coarse_data / "classes.txt").read_text().split() == ["horizontal", "vertical", "size", "blink", "still"]
    assert json.loads((coarse_data / "meta.json").read_text())["flip_sensitive"] is False


@pytest.mark.slow
def test_two_dataset_run_trains_resumes_bit_identically_and_evaluates_per_dataset(synthetic_data, coarse_data, tmp_path, capsys):
    cfg = multitrain_config(synthetic_data, coarse_data, "train.epochs=3", "train.checkpoint_every=1", "train.keep_checkpoints=50",
                            "train.deterministic=true", "train.eval_every=0")
    reference = train(cfg, tmp_path / "reference")
    total = reference["iterations"]
    assert total == 3 * 4  # 20 fine + round(0.5 × 10) coarse slots, batches of 8
    # per dataset: metrics keyed by name, own metric (top-1 / mAP), own views, own files and curves
    assert set(reference["datasets"]) == {"fine", "coarse"}
    assert reference["datasets"]["fine"]["videos"] == 10 and reference["datasets"]["coarse"]["videos"] == 5
    assert "top1" in reference["datasets"]["fine"] and "mAP" in reference["datasets"]["coarse"]
    assert reference["best"]["metric"] == "mean"
    run = tmp_path / "reference"
    assert (run / "fine" / "predictions.jsonl").exists() and (run / "fine" / "confusion.png").exists()
    assert (run / "coarse" / "predictions.jsonl").exists()
    assert (run / "accuracy_fine.png").exists() and (run / "accuracy_coarse.png").exists()
    first = next(r for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train")
    assert {"loss_fine", "loss_coarse", "loss_fine_to_coarse", "loss_coarse_to_fine", "loss_informative"} <= set(first)

    # resume from the middle of epoch 2 in another folder: the same final weights, bit for bit
    middle = next(p for p in list_checkpoints(run / "checkpoints") if int(p.stem.split("-")[1]) == 6)
    shutil.copytree(run / "checkpoints", tmp_path / "resumed" / "checkpoints")
    for path in list_checkpoints(tmp_path / "resumed" / "checkpoints"):
        if int(path.stem.split("-")[1]) > 6:
            path.unlink()
    (tmp_path / "resumed" / "checkpoints" / "best.pt").unlink(missing_ok=True)
    resumed = train(cfg, tmp_path / "resumed", resume="auto")
    assert resumed["iterations"] == total and middle.exists()
    expected = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])["model"]
    got = load_checkpoint(list_checkpoints(tmp_path / "resumed" / "checkpoints")[-1])["model"]
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []
    assert any(k.startswith("head.projection.fine_to_coarse") for k in expected)

    # inspect projections: Table 4's form, JSON, a heat map per ordered pair
    capsys.readouterr()
    assert main(["inspect", "projections", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Cross-dataset Pair  Top-5 Action Pairs" in out
    row = next(line for line in out.splitlines() if line.startswith("fine to coarse"))
    pairs = eval(row[len("fine to coarse"):].strip())  # [('source', 'target'), ...] as Table 4 prints it
    assert len(pairs) == 5 and all(len(p) == 2 for p in pairs)
    assert (run / "projections" / "fine_to_coarse.png").exists() and (run / "projections" / "coarse_to_fine.png").exists()
    assert main(["inspect", "projections", str(run / "checkpoints" / "best.pt"), "--json", "--top", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [p["pair"] for p in report["pairs"]] == ["fine to coarse", "coarse to fine"]
    assert all(len(p["top"]) == 3 for p in report["pairs"])

    # export: the heads without the projections and the expander (they only train)
    assert main(["export", str(run / "checkpoints" / "best.pt"), "--format", "pt2", "--out", str(tmp_path / "pt2")]) == 0
    exported = list(torch.export.load(tmp_path / "pt2" / "model.pt2").state_dict)
    assert "head.classifier.coarse.2.weight" in exported
    assert not [k for k in exported if k.startswith(("head.projection", "head.expander"))]
    # safetensors: load_exported rebuilds the backbone's network alone, so a network with heads of its own is refused
    capsys.readouterr()
    assert main(["export", str(run / "checkpoints" / "best.pt"), "--format", "safetensors", "--out", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the multitrain task adds heads of its own" in err
    assert not (tmp_path / "st").exists()

    # predict: every head by default, one with --head
    video = str(synthetic_data / "val" / "grow" / "grow_000.mp4")
    assert main(["predict", video, "--checkpoint", str(run / "checkpoints" / "best.pt"), "--json"]) == 0
    heads = json.loads(capsys.readouterr().out)["predictions"][0]["heads"]
    assert set(heads) == {"fine", "coarse"} and len(heads["fine"]["top"]) == 5
    assert main(["predict", video, "--checkpoint", str(run / "checkpoints" / "best.pt"), "--json", "--head", "coarse"]) == 0
    assert set(json.loads(capsys.readouterr().out)["predictions"][0]["heads"]) == {"coarse"}
    assert main(["predict", video, "--checkpoint", str(run / "checkpoints" / "best.pt"), "--head", "nope"]) == 2
    assert "error: head 'nope': expected one of fine, coarse" in capsys.readouterr().err


def test_a_broken_video_is_replaced_from_its_own_dataset(synthetic_data, coarse_data, tmp_path, capsys):
    fine = tmp_path / "fine"
    shutil.copytree(synthetic_data, fine)
    (fine / "train" / "grow" / "grow_000.mp4").write_bytes(b"not a video")
    cfg = multitrain_config(fine, coarse_data, "train.epochs=1", "train.eval_every=0", "eval.clips=1", "multitrain.hidden=64")
    summary = train(cfg, tmp_path / "run")
    assert [Path(p).name for p, _ in summary["skipped_videos"]] == ["grow_000.mp4"]
    # 64 expander outputs over 8 clips: the start line says the variance hinge is out of reach
    assert "\nnote: the informative loss cannot reach unit variance at 8 clips a step" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_train_a_multigrid_multi_dataset_run_in_lockstep(synthetic_data, coarse_data, tmp_path):
    from tests.engine.test_distributed import run_two_processes

    cfg = multitrain_config(synthetic_data, coarse_data, "multigrid.enabled=true", "train.batch_size=4", "train.epochs=2",
                            "train.eval_every=0", "multigrid.precise_bn_batches=2")
    save_config(cfg, tmp_path / "config.yaml")
    ranks = run_two_processes(tmp_path / "config.yaml", tmp_path)
    assert len(ranks) == 2 and all("error" not in r for r in ranks), [r.get("traceback") for r in ranks]
    summary = ranks[0]["summary"]
    assert summary["processes"] == 2 and summary["multigrid"] and set(summary["datasets"]) == {"fine", "coarse"}
    assert summary["datasets"]["fine"]["videos"] == 10 and summary["datasets"]["coarse"]["videos"] == 5
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][key]), key


def test_schedule_counts_an_epochs_clips_over_the_datasets(synthetic_data, coarse_data, tmp_path, capsys):
    save_config(multitrain_config(synthetic_data, coarse_data), tmp_path / "config.yaml")
    assert main(["schedule", str(tmp_path / "config.yaml"), "--json", "--plot", ""]) == 0
    assert json.loads(capsys.readouterr().out)["dataset_size"] == 20 + 5  # fine × 1.0 + coarse's 10 × 0.5
