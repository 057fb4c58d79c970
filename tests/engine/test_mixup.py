"""Mixup / CutMix on 5-D video batches: soft targets sum to 1, the CutMix box matches λ."""

import pytest
import torch

from vidgrid.engine.mixup import Mixer, cutmix_clips, smooth_targets
from vidgrid.engine.losses import build_loss, soft_target_cross_entropy


def _batch(b=6, t=3, s=16):
    # every clip constant = its index, so a pixel tells which clip it came from
    clips = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 3, t, s, s).contiguous()
    return clips, torch.arange(b) % 4


def test_label_smoothing():
    y = smooth_targets(torch.tensor([2, 0]), 4, 0.1, multi_label=False)
    assert y[0].tolist() == pytest.approx([0.025, 0.025, 0.925, 0.025])
    assert y.sum(1).tolist() == pytest.approx([1.0, 1.0])
    m = smooth_targets(torch.tensor([[1.0, 0.0, 1.0]]), 3, 0.2, multi_label=True)
    assert m[0].tolist() == pytest.approx([0.9, 0.1, 0.9])


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_targets_sum_to_one_and_match_lambda(mode):
    mixer = Mixer(num_classes=4, mixup_alpha=0.8 if mode == "mixup" else 0.0,
                  cutmix_alpha=1.0 if mode == "cutmix" else 0.0, label_smoothing=0.1, seed=3)
    for _ in range(20):
        clips, targets = _batch()
        out = mixer(clips, targets)
        assert out.mode == mode and out.clips.shape == clips.shape
        assert out.targets.sum(1).tolist() == pytest.approx([1.0] * 6)
        soft = smooth_targets(targets, 4, 0.1, multi_label=False)
        if mode == "mixup":
            # a constant clip i mixed with j is λ·i + (1-λ)·j everywhere: recover j, check the targets
            assert out.clips.std(dim=(1, 2, 3, 4)).max() < 1e-4
            if out.lam < 0.999:
                j = ((out.clips[:, 0, 0, 0, 0] - out.lam * clips[:, 0, 0, 0, 0]) / (1 - out.lam)).round().long()
                assert torch.allclose(out.targets, out.lam * soft + (1 - out.lam) * soft[j], atol=1e-4)
        else:
            # fraction of pixels (per clip, same box in every frame) still equal to the clip itself
            kept = (out.clips == clips).float().mean(dim=(1, 2, 3, 4))
            moved = kept < 1  # clips whose partner is themselves keep everything
            if moved.any():
                assert kept[moved].tolist() == pytest.approx([out.lam] * int(moved.sum()), abs=1e-6)
            same_box = (out.clips[:, :, :1] == out.clips).all()
            assert same_box


def test_cutmix_box_area_and_frames():
    clips, _ = _batch(b=2, t=4, s=10)
    out = cutmix_clips(clips, torch.tensor([1, 0]), (2, 7, 1, 5))
    assert (out[0, :, :, 2:7, 1:5] == 1).all() and (out[0] == 1).sum() == 3 * 4 * 5 * 4
    assert (out[1, :, :, 2:7, 1:5] == 0).all()


def test_multilabel_mix_and_no_mixing():
    mixer = Mixer(num_classes=3, mixup_alpha=0.8, multi_label=True, seed=0)
    clips = torch.randn(4, 3, 2, 8, 8)
    targets = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    out = mixer(clips, targets)
    assert out.targets.shape == (4, 3) and (out.targets >= 0).all() and (out.targets <= 1).all()
    plain = Mixer(num_classes=3)
    res = plain(clips, torch.tensor([0, 1, 2, 0]))
    assert res.mode == "none" and res.clips is clips and res.targets[0].tolist() == [1.0, 0.0, 0.0]


def test_state_dict_reproduces_mixing():
    a = Mixer(num_classes=4, mixup_alpha=0.8, cutmix_alpha=1.0, seed=1)
    a(*_batch())
    state = a.state_dict()
    first = a(*_batch())
    b = Mixer(num_classes=4, mixup_alpha=0.8, cutmix_alpha=1.0, seed=99)
    b.load_state_dict(state)
    second = b(*_batch())
    assert first.mode == second.mode and first.lam == second.lam
    assert torch.equal(first.clips, second.clips)


def test_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    hard = torch.tensor([0, 1])
    onehot = smooth_targets(hard, 3, 0.0, multi_label=False)
    assert soft_target_cross_entropy(logits, onehot).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, hard).item(), rel=1e-6)
    assert build_loss(False)(logits, hard).item() == pytest.approx(soft_target_cross_entropy(logits, onehot).item())
    bce = build_loss(True)(logits, torch.tensor([[1.0, 0, 0], [0, 1, 1]]))
    assert bce.item() > 0
