"""Converted weights (``vidgrid convert``) initialise training and serve ``eval`` and ``predict``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidgrid.cli import main
from vidgrid.config import load_config
from vidgrid.engine.evaluate import evaluate_checkpoint
from vidgrid.engine.weights import load_pretrained, load_weights
from vidgrid.errors import CheckpointError
from vidgrid.models import create_model
from vidgrid.models.convert import key_table

from test_cli import one_error_line


def _peer_checkpoint(path: Path, model_name: str, num_classes: int) -> torch.nn.Module:
    """A PySlowFast-layout checkpoint of a randomly initialised ``model_name``; returns that model."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=num_classes)
    table = key_table(model, "pyslowfast")
    torch.save({"model_state": {table[k]: v for k, v in model.state_dict().items()}}, path)
    return model


@pytest.fixture(scope="module")
def converted(tmp_path_factory, synthetic_data) -> tuple[Path, Path, torch.nn.Module]:
    """x3d_xs converted with the synthetic set's 10 class names, and without names (7 classes)."""
    folder = tmp_path_factory.mktemp("converted")
    _peer_checkpoint(folder / "named.pyth", "x3d_xs", 10)
    assert main(["convert", str(folder / "named.pyth"), str(folder / "named.pt"), "--from", "pyslowfast",
                 "--model", "x3d_xs", "--classes", str(synthetic_data / "classes.txt")]) == 0
    model = _peer_checkpoint(folder / "bare.pyth", "x3d_xs", 7)
    assert main(["convert", str(folder / "bare.pyth"), str(folder / "bare.pt"), "--from", "pyslowfast",
                 "--model", "x3d_xs"]) == 0
    return folder / "named.pt", folder / "bare.pt", model


def test_converted_weights_initialise_a_model_with_a_new_head(converted, capsys) -> None:
    _, bare, source = converted
    model = create_model("x3d_xs", num_classes=10)
    load_pretrained(model, str(bare), options={}, announce=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classifier re-initialised for 10 classes" in err[0] and "has 7" in err[0]
    own, theirs = model.state_dict(), source.state_dict()
    assert all(torch.equal(own[k], theirs[k]) for k in own if not k.startswith("head."))


def test_converted_weights_of_another_architecture_name_the_keys(converted) -> None:
    _, bare, _ = converted
    with pytest.raises(CheckpointError) as err:
        load_pretrained(create_model("x3d_xs", num_classes=7, depth_factor=1.0), str(bare), options={}, announce=False)
    assert "bare.pt: weights do not fit the X3D model" in str(err.value) and "\n" not in str(err.value)
    assert "unexpected 302 (res2.1.conv_a.weight" in str(err.value)


def test_convert_records_class_names_and_checks_their_count(converted, synthetic_data, tmp_path, capsys) -> None:
    named, bare, _ = converted
    assert load_weights(named).classes == (synthetic_data / "classes.txt").read_text().split()
    assert load_weights(bare).classes is None
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    line = one_error_line(capsys, ["convert", str(bare.with_suffix(".pyth")), str(tmp_path / "x.pt"), "--from",
                                   "pyslowfast", "--model", "x3d_xs", "--classes", str(tmp_path / "three.txt")])
    assert "--classes: 3 class names" in line and "7 classes" in line


@pytest.mark.slow
def test_predict_and_eval_with_converted_weights(converted, synthetic_data, tiny_args, tmp_path, capsys) -> None:
    named, bare, _ = converted
    video = synthetic_data / (synthetic_data / "val.csv").read_text().split()[0]
    classes = (synthetic_data / "classes.txt").read_text().split()
    assert main(["predict", str(video), "--checkpoint", str(named), "--json", "--top", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "x3d_xs" and len(result["predictions"][0]["top"]) == 3
    assert all(t["class"] == classes[t["index"]] for t in result["predictions"][0]["top"])

    line = one_error_line(capsys, ["predict", str(video), "--checkpoint", str(bare)])
    assert "converted weights without class names (convert again with --classes FILE)" in line

    cfg = load_config(None, tiny_args("model.options={}"))
    metrics = evaluate_checkpoint(cfg, named, tmp_path / "eval")
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert metrics["videos"] == len(rows) == 10
    assert metrics["top1"] == pytest.approx(sum(r["correct"] for r in rows) / 10)  # the checkpoint's own predictions


@pytest.mark.slow
def test_converted_weights_fine_tune_on_the_synthetic_set(converted, tiny_args, tmp_path, capsys) -> None:
    _, bare, _ = converted
    argv = ["train", "demo", *tiny_args("model.options={}", "train.epochs=1", f"model.pretrained={bare}"),
            "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert "classifier re-initialised for 10 classes" in capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # the whole epoch of 20 videos: the long cycle's coarsest shape takes them in one batch
    assert (summary["epochs"], summary["iterations"], summary["clips_seen"]) == (1, 1, 20)


def test_converted_options_must_match_the_recipe(tmp_path) -> None:
    """A converted softmax I3D-NL needs model.options.nonlocal_form=softmax: one line says so."""
    tiny = {"width": 8, "stage_depths": (1, 2, 2, 1)}
    model = create_model("i3d_nl_r50_8x8", num_classes=7, nonlocal_form="softmax", **tiny)
    torch.save({"model": model.state_dict(), "model_name": "i3d_nl_r50_8x8", "num_classes": 7,
                "converted_from": {"source": "pyslowfast", "file": "x"}, "model_options": {"nonlocal_form": "softmax"}},
               tmp_path / "nl.pt")
    assert load_weights(tmp_path / "nl.pt").options == {"nonlocal_form": "softmax"}
    load_pretrained(model, str(tmp_path / "nl.pt"), options={"nonlocal_form": "softmax"}, announce=False)
    with pytest.raises(CheckpointError, match=r"nl.pt: converted as i3d_nl_r50_8x8 with nonlocal_form=softmax; "
                                              r"set model.options.nonlocal_form=softmax$"):
        load_pretrained(model, str(tmp_path / "nl.pt"), options={}, announce=False)
