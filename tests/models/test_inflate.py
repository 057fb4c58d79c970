"""2-D -> 3-D inflation (multigrid paper §4.4): a clip of one repeated frame through an inflated I3D /
Slow gives C2D's features from the same 2-D weights (C2D is the 2-D network applied per frame)."""

from __future__ import annotations

import pytest
import torch

from vidgrid.cli import main
from vidgrid.errors import CheckpointError
from vidgrid.models import create_model
from vidgrid.models.inflate import inflate_kernel, inflate_state_dict, resnet2d_key
from vidgrid.models.state_keys import parse_key

SIZE = {"width": 8, "stage_depths": (1, 2, 2, 1)}


def resnet2d_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random 2-D ResNet in the torchvision/timm layout, with the tiny models' widths and depths."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in create_model("c2d_r50_8x8", num_classes=10, **SIZE).state_dict().items():
        name = resnet2d_key(parse_key(key))
        if name is None or not value.is_floating_point():
            continue
        shape = value.shape[:2] + value.shape[3:] if value.ndim == 5 else value.shape  # (O, I, 1, h, w) -> (O, I, h, w)
        if name.endswith("running_var") or (value.ndim == 1 and name.endswith("weight")):
            state[name] = 0.5 + torch.rand(shape, generator=g)
        else:
            state[name] = torch.randn(shape, generator=g) / (shape[1:].numel() ** 0.5 if len(shape) > 1 else 5)
    return state


def inflated(name: str, mode: str, src: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = create_model(name, num_classes=10, **SIZE)
    state, _ = inflate_state_dict(src, model, mode)  # type: ignore[arg-type]
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def repeated_frame_clip() -> torch.Tensor:
    return torch.randn(1, 3, 1, 32, 32).expand(-1, -1, 16, -1, -1).contiguous()  # (B, C, T, H, W), all frames equal


def test_kernels_repeat_over_time_or_sit_at_the_centre() -> None:
    w = torch.randn(4, 2, 3, 3)
    mean = inflate_kernel(w, torch.Size([4, 2, 5, 3, 3]), "mean")
    assert torch.allclose(mean.sum(2), w) and torch.equal(mean[:, :, 0], mean[:, :, 4])
    center = inflate_kernel(w, torch.Size([4, 3, 5, 3, 3]), "center")  # one extra (lateral) input channel
    assert torch.equal(center[:, :2, 2], w) and not center[:, :, [0, 1, 3, 4]].any() and not center[:, 2].any()


@torch.no_grad()
def test_center_inflation_gives_c2d_features_on_a_repeated_frame(repeated_frame_clip) -> None:
    src = resnet2d_state()
    c2d = inflated("c2d_r50_8x8", "center", src).forward_features(repeated_frame_clip)  # (B, C, T/2, H', W')
    i3d = inflated("i3d_r50_8x8", "center", src).forward_features(repeated_frame_clip)
    slow = inflated("slow_r50_8x8", "center", src).forward_features(repeated_frame_clip)  # no temporal pool: T
    assert c2d.abs().max() > 0.1
    assert torch.allclose(i3d, c2d, atol=1e-5)
    assert torch.allclose(slow, c2d[:, :, :1].expand_as(slow), atol=1e-5)


@torch.no_grad()
def test_mean_inflation_matches_away_from_the_temporal_borders() -> None:
    """Zero padding cuts the k-tap sums at the borders; the cut spreads inwards with every temporal conv
    (I3D: stem 5 + 3-tap convs in every stage, 4 positions of 16 after the pool; Slow: 3 of 32)."""
    clip = torch.randn(1, 3, 1, 32, 32).expand(-1, -1, 32, -1, -1).contiguous()
    src = resnet2d_state()
    c2d = inflated("c2d_r50_8x8", "mean", src).forward_features(clip)  # (B, C, 16, H', W')
    i3d = inflated("i3d_r50_8x8", "mean", src).forward_features(clip)
    slow = inflated("slow_r50_8x8", "mean", src).forward_features(clip)  # (B, C, 32, H', W')
    assert torch.allclose(i3d[:, :, 4:-4], c2d[:, :, 4:-4], atol=1e-5)
    assert not torch.allclose(i3d[:, :, :1], c2d[:, :, :1], atol=1e-3)  # the border differs
    assert torch.allclose(slow[:, :, 3:-3], c2d[:, :, :1].expand_as(slow)[:, :, 3:-3], atol=1e-5)


def test_slowfast_inflates_its_slow_pathway_and_lists_what_stays_fresh() -> None:
    model = create_model("slowfast_r50_8x8", num_classes=10, **SIZE)
    before = model.state_dict()
    state, fresh = inflate_state_dict(resnet2d_state(), model, "center")
    assert {parse_key(k).pathway for k in fresh if parse_key(k).part != "fuse" and not k.startswith("head")} == {1}
    assert any(k.startswith("fuse.") for k in fresh) and "head.fc.weight" in fresh  # 2048 + 256 inputs
    conv_a = state["slow.res3.blocks.0.conv_a.weight"]  # reads res2's 32 channels + 16 lateral ones
    assert not conv_a[:, 32:].any() and conv_a[:, :32].any()
    assert torch.equal(state["fast.res3.blocks.0.conv_a.weight"], before["fast.res3.blocks.0.conv_a.weight"])


def test_a_2d_state_of_another_depth_is_one_error_line() -> None:
    src = resnet2d_state()
    del src["layer3.1.conv2.weight"]
    with pytest.raises(CheckpointError, match=r"missing 2-D ResNet keys \(1\): layer3.1.conv2.weight$"):
        inflate_state_dict(src, create_model("i3d_r50_8x8", num_classes=10, **SIZE), "mean")


def test_convert_from_resnet2d(tmp_path, monkeypatch, capsys) -> None:
    src = resnet2d_state()
    torch.save(src, tmp_path / "resnet50.pth")
    monkeypatch.setattr("vidgrid.models.convert.create_model", lambda n, num_classes, **kw: create_model(n, num_classes, **SIZE))
    argv = ["convert", str(tmp_path / "resnet50.pth"), str(tmp_path / "i3d_nl.pt"), "--from", "resnet2d",
            "--model", "i3d_nl_r50_8x8", "--inflate", "center"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "inflated (center); freshly initialised: non-local blocks (" in out
    ckpt = torch.load(tmp_path / "i3d_nl.pt", weights_only=True)
    assert ckpt["converted_from"]["inflation"] == "center" and ckpt["num_classes"] == 10
    assert torch.equal(ckpt["model"]["res4.blocks.1.conv_b.weight"][:, :, 0], src["layer3.1.conv2.weight"])
    assert main(["convert", str(tmp_path / "resnet50.pth"), str(tmp_path / "x.pt"), "--from", "resnet2d",
                 "--model", "x3d_s"]) == 2
    assert "--from resnet2d supports c2d_*, i3d_*, slow_*, slowfast_* only" in capsys.readouterr().err
