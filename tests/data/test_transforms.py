"""Spatial transforms and RandAugment on uint8 (T, H, W, C) clips."""

from __future__ import annotations

import random

import pytest
import torch

from vidgrid.data import randaugment, transforms


def _clip(t: int = 4, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_layout_conversion() -> None:
    clip = _clip()
    out = transforms.to_model_layout(clip)
    assert out.shape == (3, 4, 48, 64) and out.is_contiguous()
    assert torch.equal(out[:, 2, 5, 7], clip[2, 5, 7])


def test_resize_keeps_dtype_layout_and_constant_images() -> None:
    flat = torch.full((2, 30, 40, 3), 77, dtype=torch.uint8)
    out = transforms.resize(flat, 15, 20)
    assert out.shape == (2, 15, 20, 3) and out.dtype == torch.uint8
    assert torch.all(out == 77)
    assert transforms.resize_short_side(_clip(h=48, w=64), 24).shape == (4, 24, 32, 3)
    assert transforms.resize_short_side(_clip(h=64, w=48), 24).shape == (4, 32, 24, 3)


@pytest.mark.parametrize(("crop", "expected"), [(224, (256, 320)), (112, (128, 160)), (158, (181, 226)), (64, (73, 91))])
def test_jitter_range_scales_with_the_crop(crop: int, expected: tuple[int, int]) -> None:
    # the base interval [256, 320] at S = 224, times s/S: every crop spans the base crop's share of the frame
    assert transforms.jitter_range(crop, 224, 256, 320) == expected


@pytest.mark.parametrize("crop", [23, 32, 45, 64])
def test_every_multigrid_crop_spans_the_base_crops_share_of_the_frame(crop: int) -> None:
    # demo recipe: 64² crops of a 64-80 px short side span 80-100% of it; a 23² crop must too (§3.1:
    # a coarser grid over the same span), not zoom into a window that may miss the object
    rng = random.Random(crop)
    for _ in range(200):
        short = rng.randint(*transforms.jitter_range(crop, 64, 64, 80))
        _, _, side, _ = transforms.rescale_crop_box(120, 160, crop, short, rng)
        assert 0.79 <= side / 120 <= 1.0


def test_jitter_range_never_goes_below_the_crop() -> None:
    assert transforms.jitter_range(40, 64, 32, 36) == (40, 40)


def test_rescale_crop_box_matches_the_jittered_short_side() -> None:
    rng = random.Random(0)
    for _ in range(100):
        top, left, h, w = transforms.rescale_crop_box(90, 160, 32, 45, rng)
        assert h == w == 64  # 32 px of a 90 px short side rescaled to 45 -> 64 source px
        assert 0 <= top <= 90 - 64 and 0 <= left <= 160 - 64


@pytest.mark.parametrize("crop", [16, 32, 45])
def test_random_rescale_crop_output_size(crop: int) -> None:
    rng = random.Random(crop)
    out, _ = transforms.random_rescale_crop(_clip(), crop, transforms.jitter_range(crop, 45, 48, 60), rng)
    assert out.shape == (4, crop, crop, 3) and out.dtype == torch.uint8


def test_random_resized_crop_boxes_respect_scale_and_ratio() -> None:
    rng = random.Random(0)
    for _ in range(200):
        top, left, h, w = transforms.resized_crop_box(120, 160, rng)
        assert 0 <= top and top + h <= 120 and 0 <= left and left + w <= 160
        assert 0.07 <= h * w / (120 * 160) <= 1.0
        assert 0.7 <= w / h <= 1.4
    assert transforms.random_resized_crop(_clip(), 24, rng)[0].shape == (4, 24, 24, 3)


def test_resized_crop_falls_back_to_a_centred_box_for_extreme_aspect() -> None:
    # a 4×200 strip: no box with aspect in [3/4, 4/3] holds 8 % of it, so the centred fallback is used
    assert transforms.resized_crop_box(4, 200, random.Random(0)) == (0, 97, 4, 5)


def test_flip_mirrors_every_frame_the_same_way() -> None:
    clip = _clip()
    outs = [transforms.random_hflip(clip, random.Random(seed))[0] for seed in range(20)]
    flipped = [o for o in outs if not torch.equal(o, clip)]
    assert flipped and len(flipped) < 20
    assert all(torch.equal(o, clip.flip(2)) for o in flipped)


@pytest.mark.parametrize(
    ("h", "w", "expected"),
    [
        (40, 60, [(4, 0, 32, 32), (4, 14, 32, 32), (4, 28, 32, 32)]),  # landscape: left, centre, right
        (60, 40, [(0, 4, 32, 32), (14, 4, 32, 32), (28, 4, 32, 32)]),  # portrait: top, centre, bottom
    ],
)
def test_three_crop_boxes(h: int, w: int, expected: list) -> None:
    assert transforms.eval_crop_boxes(h, w, 32, 3) == expected
    assert transforms.eval_crop_boxes(h, w, 32, 1) == [expected[1]]


def test_randaugment_applies_one_sequence_to_all_frames() -> None:
    clip = _clip(t=1, h=24, w=32, seed=3).expand(4, -1, -1, -1).contiguous()
    for seed in range(20):
        out = randaugment.rand_augment(clip, 3, 9, random.Random(seed))
        assert out.shape == clip.shape and out.dtype == torch.uint8
        assert all(torch.equal(out[0], out[k]) for k in range(1, 4))


@pytest.mark.parametrize("name", sorted(randaugment.OPS))
def test_every_op_keeps_shape_and_frames_identical(name: str) -> None:
    clip = (_clip(t=1, h=20, w=30, seed=4) // 2 + 40).expand(3, -1, -1, -1).contiguous()  # values 40..167
    arg = 1.0 + 0.9 if randaugment.OPS[name][3] else randaugment.OPS[name][1]
    out = randaugment.apply_ops(clip, [(name, arg)])
    assert out.shape == clip.shape and out.dtype == torch.uint8
    assert torch.equal(out[0], out[2])
    if name != "identity":
        assert not torch.equal(out, clip), f"{name} at full magnitude changed nothing"


def test_magnitude_zero_leaves_parametric_ops_as_no_ops() -> None:
    clip = _clip(h=20, w=30)
    rng = random.Random(0)
    for _ in range(30):
        ops = [op for op in randaugment.sample_ops(2, 0, rng) if op[0] not in ("autocontrast", "equalize")]
        assert torch.equal(randaugment.apply_ops(clip, ops), clip), ops


def test_geometric_ops_move_content() -> None:
    clip = torch.zeros(1, 20, 20, 3, dtype=torch.uint8)
    clip[:, 8:12, 2:6] = 255  # a white block near the left edge
    moved = randaugment.translate_x(clip, 0.25)  # 5 px to the right
    assert moved[0, 10, 9].min() == 255 and moved[0, 10, 3].max() < 255
    rotated = randaugment.rotate(clip, 90)  # a quarter turn moves it off the left edge
    assert rotated[0, 10, 3].max() < 255
