"""`vidgrid export`: safetensors, ONNX and torch.export round trips of tiny X3D, SlowFast and MViTv2
checkpoints (outputs equal within the tolerance at another batch size than traced), the sidecar, the
model card, and the one-line error when the optional ONNX dependencies are missing."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from vidgrid.cli import main
from vidgrid.config import config_to_dict, load_config
from vidgrid.engine.export import TOLERANCE, check_export
from vidgrid.engine.state import TrainState
from vidgrid.errors import CheckpointError
from vidgrid.models import create_model, load_exported

CLASSES = ["walk", "run", "jump"]
FAMILIES = {
    "x3d_xs": ({"width_factor": 0.5, "depth_factor": 0.2}, 4),
    "slowfast_r50_8x8": ({"width": 16, "stage_depths": [1, 1, 1, 1]}, 8),
    "mvitv2_s_16x4": ({"embed_dim": 8, "depths": [1, 1, 1, 1], "frames": 4, "crop": 32}, 4),
}
CROP = 32


def tiny_checkpoint(folder, name):
    """A checkpoint of a tiny ``name`` whose weights and BN statistics are all perturbed (no zero
    gamma, no identity BN hides a wrong tensor), with the counters of a finished run."""
    options, frames = FAMILIES[name]
    cfg = load_config(None, [f"model.name={name}", f"model.options={json.dumps(options)}", f"data.frames={frames}",
                             f"data.crop={CROP}", "eval.clips=2", "eval.crops=3", "model.dropout=0.0"])
    model = create_model(name, num_classes=len(CLASSES), dropout=0.0, **options)
    torch.manual_seed(1)
    state = {k: (v + 0.2 * torch.randn_like(v)).abs() if "running_var" in k else
             v + 0.2 * torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    counters = TrainState(epoch=3, iteration=30, clips_seen=240, wall_time_s=90.0, val={"top1": 0.5, "top5": 1.0},
                          best={"value": 0.5, "epoch": 2})
    path = folder / f"{name}.pt"
    torch.save({"model": state, "config": config_to_dict(cfg), "classes": CLASSES, "task": "classification",
                "train": {"state": counters.state_dict()}}, path)
    return path, model.eval(), frames


def clip(batch, frames):
    return torch.randn(batch, 3, frames, CROP, CROP, generator=torch.Generator().manual_seed(7))


def assert_close(got, want):
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= TOLERANCE * float(want.abs().max())


@pytest.mark.parametrize("name", list(FAMILIES))
def test_safetensors_export_reloads_the_same_model(name, tmp_path, capsys):
    ckpt, model, frames = tiny_checkpoint(tmp_path, name)
    out = tmp_path / "export"
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(out)]) == 0
    assert "safetensors: max |Δ|" in capsys.readouterr().out
    reloaded = load_exported(out)
    x = clip(1, frames)
    with torch.inference_mode():
        assert torch.equal(reloaded(x), model(x))
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["classes"] == CLASSES and sidecar["model"]["name"] == name
    assert sidecar["preprocessing"] == {"frames": frames, "sampling_rate": 4, "short_side": CROP, "crop": CROP,
                                        "mean": [0.45, 0.45, 0.45], "std": [0.225, 0.225, 0.225],
                                        "views": {"clips": 2, "crops": 3}}
    assert not (out / "model.safetensors").read_bytes().startswith(b"PK")  # not a zip of pickles


@pytest.mark.slow
@pytest.mark.parametrize("name, dynamic", [("x3d_xs", ["batch", "frames"]), ("slowfast_r50_8x8", ["batch"]),
                                           ("mvitv2_s_16x4", ["batch"])])
def test_pt2_export_runs_with_a_dynamic_batch(name, dynamic, tmp_path, capsys):
    ckpt, model, frames = tiny_checkpoint(tmp_path, name)
    out = tmp_path / "export"
    assert main(["export", str(ckpt), "--format", "pt2", "--out", str(out)]) == 0
    assert "pt2: max |Δ|" in capsys.readouterr().out
    program = torch.export.load(out / "model.pt2").module()
    for batch in (1, 4):
        x = clip(batch, frames)
        with torch.inference_mode():
            assert_close(program(x), model(x))
    assert json.loads((out / "model.json").read_text())["input"]["dynamic"] == dynamic
    if "frames" in dynamic:
        x = clip(2, 2 * frames)
        with torch.inference_mode():
            assert_close(program(x), model(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_onnx_export_matches_onnx_runtime(name, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    ckpt, model, frames = tiny_checkpoint(tmp_path, name)
    out = tmp_path / "export"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    assert "onnx: max |Δ|" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = clip(batch, frames)
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.inference_mode():
            assert_close(torch.from_numpy(got), model(x))


def test_onnx_without_the_extra_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    ckpt, _, _ = tiny_checkpoint(tmp_path, "x3d_xs")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "export")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'vidgrid[export]'" in err and "onnxruntime" in err
    assert not (tmp_path / "export").exists()


def test_model_card_states_cost_views_data_metrics_and_recipe(tmp_path):
    ckpt, model, _ = tiny_checkpoint(tmp_path, "x3d_xs")
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(tmp_path / "export")]) == 0
    card = (tmp_path / "export" / "model_card.md").read_text()
    params = sum(p.numel() for p in model.parameters())
    assert f"parameters: {params:,}" in card
    assert "views per video: 2 clips x 3 crops = 6" in card
    per_view = float(card.split("GFLOPs per view (multiply-adds, 4x32x32 clip): ")[1].split()[0])
    per_video = float(card.split("GFLOPs per video: ")[1].split()[0])
    assert per_view > 0 and per_video == pytest.approx(6 * per_view, rel=1e-3)
    assert "- top1: 0.5" in card and "best top1: 0.5 (epoch 2)" in card
    assert "wall time: 90.0 s; iterations: 30; epochs: 3; clips: 240" in card
    assert "classes (3): walk, run, jump" in card
    (tmp_path / "recipe.yaml").write_text(card.split("```yaml\n")[1].split("```")[0])
    assert config_to_dict(load_config(str(tmp_path / "recipe.yaml"))) == torch.load(ckpt)["config"]


def test_an_export_off_by_more_than_the_tolerance_is_an_error():
    want = torch.tensor([[1.0, -2.0]])
    assert "relative 5.00e-05" in check_export("onnx", want + 1e-4, want)
    with pytest.raises(CheckpointError, match=r"onnx: max \|Δ\| 1\.00e-03 .*does not reproduce"):
        check_export("onnx", want + torch.tensor([[0.0, 1e-3]]), want)


def test_load_exported_names_the_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="model.json: not found"):
        load_exported(tmp_path)
    ckpt, _, _ = tiny_checkpoint(tmp_path, "x3d_xs")
    assert main(["export", str(ckpt), "--format", "pt2", "--out", str(tmp_path / "e")]) == 0
    with pytest.raises(CheckpointError, match="model.safetensors: not found"):
        load_exported(tmp_path / "e")


def task_checkpoint(folder, task_class):
    """A checkpoint of a tiny X3D carrying ``task_class``'s heads, as training writes it."""
    options, frames = FAMILIES["x3d_xs"]
    cfg = load_config(None, [f"model.options={json.dumps(options)}", f"data.frames={frames}", f"data.crop={CROP}",
                             "model.name=x3d_xs", f"task.name={task_class.name}"])
    net = task_class(CLASSES).attach(create_model("x3d_xs", num_classes=len(CLASSES), **options))
    path = folder / f"{task_class.name}.pt"
    torch.save({"model": net.state_dict(), "config": config_to_dict(cfg), "classes": CLASSES, "task": task_class.name,
                "train": {"state": TrainState().state_dict()}}, path)
    return path


def test_a_task_whose_network_takes_boxes_is_refused_in_one_line(tmp_path, capsys):
    from vidgrid.tasks.detection import Detection

    path = task_checkpoint(tmp_path, Detection)
    assert main(["export", str(path), "--format", "safetensors"]) == 2
    assert "takes person boxes" in capsys.readouterr().err


def test_safetensors_refuses_a_task_with_heads_of_its_own_and_pt2_takes_it(tmp_path, capsys):
    from vidgrid.tasks.sibling import Sibling

    path = task_checkpoint(tmp_path, Sibling)
    assert main(["export", str(path), "--format", "safetensors", "--out", str(tmp_path / "s")]) == 2
    assert "the sibling task adds heads of its own" in capsys.readouterr().err
    assert main(["export", str(path), "--format", "pt2", "--out", str(tmp_path / "p")]) == 0
    program = torch.export.load(tmp_path / "p" / "model.pt2").module()
    frames = FAMILIES["x3d_xs"][1]
    assert program(clip(2, frames)).shape == (2, len(CLASSES) + 4)  # class logits, then the box
