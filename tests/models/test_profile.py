"""``vidgrid profile``: the JSON fields and table of the practitioner's notes' benchmark columns, and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from vidgrid.cli import main
from vidgrid.models import create_model
from vidgrid.models import profile as profile_mod
from vidgrid.models.profile import Profile, clip_shape, format_table, input_field


@pytest.mark.slow
def test_profile_json_of_a_small_model(capsys, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the measuring child: no thread oversubscription
    monkeypatch.setattr(profile_mod, "list_models", lambda: ["x3d_xs"])
    assert main(["profile", "--all", "--frames", "4", "--crop", "32", "--batch", "2", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["model"] == "x3d_xs" and row["input"] == [3, 4, 32, 32]
    assert row["params"] == 3_794_274 and 0 < row["params_backbone"] < row["params"]
    assert 0 < row["gmacs"] < 0.6  # 0.60 GMACs at 4×160²; 25× fewer pixels here
    assert row["batch"] == 2 and row["device"] == "cpu"
    assert row["memory_mb"] > 0 and row["train_clips_per_s"] > 0 and row["infer_clips_per_s"] > 0


def test_table_has_the_benchmark_table_columns() -> None:
    rows = [
        Profile("mvitv1_b_16x4", [3, 16, 224, 224], 36_610_672, 36_303_072, 70.6, 1, "cpu", 2048.0, 0.5, 1.5),
        Profile(
            "slowfast_r50_8x8", [[3, 8, 224, 224], [3, 32, 224, 224]], 34_566_488, 34_000_000, 50.3, 1, "cpu", 1.0, 1.0,
            1.0,
        ),
    ]
    lines = format_table(rows).splitlines()
    for column in ("params (M)", "backbone (M)", "GMACs", "memory (MiB)", "train clips/s", "infer clips/s"):
        assert column in lines[0]
    assert "36.61" in lines[2] and "36.30" in lines[2] and "70.60" in lines[2]
    assert "3,8,224,224 + 3,32,224,224" in lines[3]


def test_default_input_and_overrides() -> None:
    with torch.device("meta"):
        model = create_model("mvitv2_b_32x3")
    assert clip_shape("mvitv2_b_32x3", model, None, None) == (3, 32, 224, 224)
    assert clip_shape("mvitv2_b_32x3", model, 8, 96) == (3, 8, 96, 96)
    assert input_field(model, (3, 8, 96, 96)) == [3, 8, 96, 96]
    with torch.device("meta"):
        slowfast = create_model("slowfast_r50_8x8")
    shape = clip_shape("slowfast_r50_8x8", slowfast, None, None)
    assert input_field(slowfast, shape) == [[3, 8, 224, 224], [3, 32, 224, 224]]  # slow + fast pathways


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile"], "either a model name or --all"),
        (["profile", "x3d_s", "--all"], "either a model name or --all"),
        (["profile", "no_such_model"], "unknown model 'no_such_model'"),
        (["profile", "mvitv2_s_16x4", "--frames", "3"], "--frames 3"),
        (["profile", "mvitv2_s_16x4", "--batch", "0"], "--batch 0"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
