"""RoIAlign against hand-computed bilinear samples (torchvision ``aligned=True`` semantics)."""

from __future__ import annotations

import pytest
import torch

from vidgrid.tasks.roi_align import roi_align

# a 4×4 map whose cell (i, j) holds 10·i + j: bilinear interpolation of it is 10·y + x inside the map
GRID = (10 * torch.arange(4.0)[:, None] + torch.arange(4.0)[None]).view(1, 1, 4, 4)


def align(rois, *, out=1, scale=1.0, ratio=1, features=GRID):
    return roi_align(features, torch.tensor(rois, dtype=torch.float32), output_size=out, spatial_scale=scale, sampling_ratio=ratio)


def test_one_sample_per_bin_reads_the_bin_centre_half_a_pixel_shifted():
    # box (1, 1)-(3, 3) -> (0.5, 0.5)-(2.5, 2.5) on the map; 2×2 bins, centres at 1.0 and 2.0
    got = align([[0, 1, 1, 3, 3]], out=2)
    assert torch.allclose(got[0, 0], torch.tensor([[11.0, 12.0], [21.0, 22.0]]))


def test_fractional_sample_is_bilinear():
    # box (0, 0)-(2, 1) -> (-0.5, -0.5)-(1.5, 0.5); one bin, centre (x 0.5, y 0.0): 0.5·0 + 0.5·1
    assert align([[0, 0, 0, 2, 1]]).item() == pytest.approx(0.5)
    # two samples per axis: x at 0.0 and 1.0, y at -0.25 (clamped to row 0) and 0.25 -> mean of 0, 1, 2.5, 3.5
    assert align([[0, 0, 0, 2, 1]], ratio=2).item() == pytest.approx((0 + 1 + 2.5 + 3.5) / 4)


def test_samples_in_the_outer_half_cell_read_the_border_cell():
    # box (3, 3)-(6, 6) -> (2.5, 2.5)-(5.5, 5.5); centre 4.0 = the map size: clamped to the last cell (33)
    assert align([[0, 3, 3, 6, 6]]).item() == pytest.approx(33.0)
    # y centre at 3.5 (past the last cell centre, inside the map): the last row, x 1.0 inside -> 31
    assert align([[0, 1, 3, 2, 5]]).item() == pytest.approx(31.0)


def test_samples_beyond_one_cell_outside_count_as_zero():
    # box (5, 0)-(7, 2) -> x centre 5.5 > 4: outside, 0
    assert align([[0, 5, 0, 7, 2]]).item() == 0.0
    box = [[0, 3, 0, 7, 2]]  # -> x from 2.5 to 6.5, samples at 3.5 and 5.5; y centre 0.5
    assert align(box, ratio=1, out=1).item() == pytest.approx(0.0)  # centre 4.5 > 4: outside
    two = align(box, ratio=2).item()  # x samples 3.5 (-> 3), 5.5 (out); y samples 0.0, 1.0
    assert two == pytest.approx((3 + 13 + 0 + 0) / 4)


def test_spatial_scale_maps_input_pixels_to_the_map():
    # stride 2: input box (2, 2)-(6, 6) -> (0.5, 0.5)-(2.5, 2.5), the same as the first test
    got = align([[0, 2, 2, 6, 6]], out=2, scale=0.5)
    assert torch.allclose(got[0, 0], torch.tensor([[11.0, 12.0], [21.0, 22.0]]))


def test_boxes_of_different_images_in_one_call_keep_their_order():
    features = torch.cat([GRID, GRID + 100, GRID + 200])  # (3, 1, 4, 4)
    # box (1, 1)-(3, 3): one bin centred at (1.5, 1.5) -> 16.5 plus the image's offset
    got = align([[2, 1, 1, 3, 3], [0, 1, 1, 3, 3], [1, 1, 1, 3, 3], [2, 0, 0, 2, 1]], features=features)
    assert got.flatten().tolist() == pytest.approx([216.5, 16.5, 116.5, 200.5])


def test_channels_and_gradients():
    torch.manual_seed(0)
    features = torch.randn(2, 5, 6, 7, requires_grad=True)
    rois = torch.tensor([[1, 0.5, 1.0, 9.0, 11.0], [0, 2.0, 2.0, 3.0, 3.0]])
    out = roi_align(features, rois, output_size=7, spatial_scale=0.5)
    assert out.shape == (2, 5, 7, 7)
    out.sum().backward()
    assert features.grad[1].abs().sum() > 0 and features.grad[0].abs().sum() > 0
    assert roi_align(features, rois[:0], output_size=7, spatial_scale=0.5).shape == (0, 5, 7, 7)
