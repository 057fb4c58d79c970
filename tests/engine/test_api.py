"""The Python API mirrors the commands: train, evaluate, predict, load_model; and `vidgrid --version`."""

from __future__ import annotations

import pytest
import torch
import yaml

import vidgrid
from vidgrid.api import override_args
from vidgrid.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"vidgrid {vidgrid.__version__}"


def test_keyword_overrides_become_command_line_overrides():
    args = override_args({"optim": {"lr": 0.2, "name": "adamw"}, "model.options": {"width_factor": 0.5}, "data.frames": 4})
    assert args == ['optim.lr=0.2', 'optim.name="adamw"', 'model.options={"width_factor": 0.5}', "data.frames=4"]
    cfg = vidgrid.recipe_config("demo", **{"optim": {"lr": 0.2}, "model.options": {"width_factor": 0.5}})
    assert cfg.optim.lr == 0.2 and cfg.model.options == {"width_factor": 0.5}


def test_an_unknown_api_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fit'"):
        vidgrid.fit  # noqa: B018


@pytest.mark.slow
def test_train_evaluate_predict_and_load_model(tiny_args, synthetic_data, tmp_path):
    overrides = {key: yaml.safe_load(value) for key, _, value in (a.partition("=") for a in tiny_args())}
    summary = vidgrid.train(None, tmp_path / "run", **overrides)
    assert summary["iterations"] == 6 and (tmp_path / "run" / "model_card.md").is_file()
    checkpoint = tmp_path / "run" / "checkpoints" / "best.pt"
    metrics = vidgrid.evaluate(None, checkpoint, tmp_path / "eval", **overrides)
    assert metrics["videos"] == 10 and 0 <= metrics["top1"] <= 1
    results = vidgrid.predict(synthetic_data / "val", checkpoint, top=2)
    assert len(results) == 10 and all(len(r["top"]) == 2 for r in results)
    assert main(["export", str(checkpoint), "--format", "safetensors", "--out", str(tmp_path / "export")]) == 0
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.inference_mode():
        assert torch.equal(vidgrid.load_model(tmp_path / "export")(x), vidgrid.load_model(checkpoint)(x))
