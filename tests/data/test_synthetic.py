"""``vidgrid synth``: reproducible classes with the motion they promise, written as decodable H.264 lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidgrid.cli import main
from vidgrid.data.annotations import load_annotations
from vidgrid.data.decode import decode_frames, probe_video
from vidgrid.data.synthetic import CLASSES, SHAPES, _shape_distance, render_video, write_synthetic_dataset
from vidgrid.errors import VidgridError


def _foreground(video: np.ndarray) -> np.ndarray:
    """bool (T, H, W): pixels that differ from the per-pixel temporal median (the static background)."""
    median = np.median(video.astype(np.float32), axis=0)
    return np.abs(video.astype(np.float32) - median).sum(-1) > 60


def _render(label: str, seed: int) -> np.ndarray:
    return render_video(label, np.random.default_rng(seed), frames=24, size=64)


def test_render_is_reproducible_and_varied() -> None:
    a, b = _render("slide_up", 0), _render("slide_up", 0)
    assert a.shape == (24, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _render("slide_up", 1))


@pytest.mark.parametrize(("label", "axis", "sign"), [("slide_left", 1, -1), ("slide_right", 1, 1), ("slide_up", 0, -1), ("slide_down", 0, 1)])
def test_slides_move_in_their_direction(label: str, axis: int, sign: int) -> None:
    for seed in range(8):
        mask = _foreground(_render(label, seed))
        along = [np.nonzero(m)[axis].mean() for m in mask if m.any()]  # axis 1: x (columns), 0: y (rows, down)
        assert sign * (along[-1] - along[0]) > 5, (seed, along[0], along[-1])


def test_grow_and_shrink_change_size_over_time() -> None:
    for seed in range(8):
        for label, sign in (("grow", 1), ("shrink", -1)):
            mask = _foreground(_render(label, seed))
            areas = [int(mask[0].sum()), int(mask[-1].sum())]
            assert sign * (areas[1] - areas[0]) > 0, (label, seed, areas)


def test_still_classes_are_static_and_blink_flickers() -> None:
    for seed in range(5):
        for shape in SHAPES:
            video = _render(f"still_{shape}", seed).astype(np.int16)
            # only the small distractor dots may move: at most a few percent of the pixels change
            assert (np.abs(video[1:] - video[:-1]).sum(-1) > 60).mean() < 0.02
        blink = _render("blink", seed).astype(np.int16)
        changed = (np.abs(blink[1:] - blink[:-1]).sum(-1) > 60).sum(axis=(1, 2))
        assert (changed > 40).sum() >= 2  # the shape appeared or vanished at least twice


def test_still_shapes_differ_in_form() -> None:
    """A filled disc, a ring with a hole and a thin cross: fill fractions of their bounding square
    far apart, so the still classes are separable even at a coarse multigrid crop."""
    yy, xx = np.mgrid[-20:21, -20:21].astype(np.float64)
    inside = {shape: _shape_distance(shape, xx, yy, np.float64(16.0)) < 0 for shape in SHAPES}
    assert set(SHAPES) == {"disc", "ring", "cross"}
    assert inside["disc"][20, 20] and inside["cross"][20, 20] and not inside["ring"][20, 20]  # the hole
    fill = {shape: mask.sum() / 32**2 for shape, mask in inside.items()}
    assert fill["disc"] == pytest.approx(np.pi / 4, abs=0.03)
    assert fill["ring"] == pytest.approx(np.pi * (1 - 0.6**2) / 4, abs=0.03)
    assert fill["cross"] == pytest.approx((2 * 2 * 0.4 - 0.4**2) / 4, abs=0.03)
    for a, b in [("disc", "ring"), ("disc", "cross"), ("ring", "cross")]:
        assert (inside[a] != inside[b]).sum() > 0.25 * inside["disc"].sum(), (a, b)


def test_synth_writes_decodable_lists(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "synth"
    assert main(["synth", str(out), "--seed", "3", "--train-per-class", "2", "--val-per-class", "1",
                 "--frames", "12", "--size", "32", "--fps", "8", "--workers", "2"]) == 0
    assert "20 training and 10 validation videos" in capsys.readouterr().out
    train = load_annotations(out / "train.csv")
    val = load_annotations(out / "val.csv")
    assert train.classes == list(CLASSES) and len(CLASSES) >= 8
    assert train.meta["flip_sensitive"] is True and train.meta["seed"] == 3
    assert sorted(s.label for s in train.samples) == sorted(list(range(10)) * 2)
    assert sorted(s.label for s in val.samples) == list(range(10))
    for sample in train.samples + val.samples:
        assert CLASSES[sample.label] in sample.path.name
        info = probe_video(sample.path)
        assert (info.num_frames, info.width, info.height, info.fps) == (12, 32, 32, 8)
    assert decode_frames(val.samples[0].path, [0, 11]).shape == (2, 32, 32, 3)


def test_synth_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    options = dict(train_per_class=1, val_per_class=1, frames=8, size=32, workers=1)
    write_synthetic_dataset(tmp_path / "a", seed=5, **options)
    write_synthetic_dataset(tmp_path / "b", seed=5, **options)
    for name in ("train/slide_down/slide_down_000.mp4", "val/blink/blink_000.mp4"):
        a = decode_frames(tmp_path / "a" / name, range(8))
        b = decode_frames(tmp_path / "b" / name, range(8))
        # the rendered pixels are identical; x264's threaded encoder may round some pixels differently
        assert np.abs(a.numpy().astype(np.int16) - b.numpy()).mean() < 2.0
    assert (tmp_path / "a" / "train.csv").read_text() == (tmp_path / "b" / "train.csv").read_text()


def test_bad_options_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(VidgridError, match="size = 33"):
        write_synthetic_dataset(tmp_path, size=33)
    with pytest.raises(VidgridError, match="train_per_class = 0"):
        write_synthetic_dataset(tmp_path, train_per_class=0)
