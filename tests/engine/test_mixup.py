"""Mixup / CutMix on 5-D video batches: soft targets sum to 1, the CutMix box matches λ."""

import pytest
import torch

from vidgrid.engine.mixup import Mixer, cutmix_clips
from vidgrid.errors import ConfigError
from vidgrid.tasks.classification import Classification
from vidgrid.tasks.multi_label import MultiLabelClassification

FOUR = Classification(["a", "b", "c", "d"])


def _batch(b=6, t=3, s=16):
    # every clip constant = its index, so a pixel tells which clip it came from
    clips = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1, 1).expand(b, 3, t, s, s).contiguous()
    return clips, torch.arange(b) % 4


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_targets_sum_to_one_and_match_lambda(mode):
    mixer = Mixer(FOUR, mixup_alpha=0.8 if mode == "mixup" else 0.0,
                  cutmix_alpha=1.0 if mode == "cutmix" else 0.0, label_smoothing=0.1, seed=3)
    checked = 0  # batches whose mixing the branch below verified
    for _ in range(20):
        clips, targets = _batch()
        out = mixer(clips, targets)
        assert out.mode == mode and out.clips.shape == clips.shape
        assert out.targets.sum(1).tolist() == pytest.approx([1.0] * 6)
        soft = FOUR.soft_targets(targets, 0.1)
        if mode == "mixup":
            # a constant clip i mixed with j is λ·i + (1-λ)·j everywhere: recover j, check the targets
            assert out.clips.std(dim=(1, 2, 3, 4)).max() < 1e-4
            if out.lam < 0.999:
                j = ((out.clips[:, 0, 0, 0, 0] - out.lam * clips[:, 0, 0, 0, 0]) / (1 - out.lam)).round().long()
                assert torch.allclose(out.targets, out.lam * soft + (1 - out.lam) * soft[j], atol=1e-4)
                checked += 1
        else:
            # fraction of pixels (per clip, same box in every frame) still equal to the clip itself
            kept = (out.clips == clips).float().mean(dim=(1, 2, 3, 4))
            moved = kept < 1  # clips whose partner is themselves keep everything
            if moved.any():
                assert kept[moved].tolist() == pytest.approx([out.lam] * int(moved.sum()), abs=1e-6)
                checked += 1
            same_box = (out.clips[:, :, :1] == out.clips).all()
            assert same_box
    assert checked == 20  # this rng mixes all 20 batches (λ from 0.007 to 0.992): none passed unchecked


def test_cutmix_box_area_and_frames():
    clips, _ = _batch(b=2, t=4, s=10)
    out = cutmix_clips(clips, torch.tensor([1, 0]), (2, 7, 1, 5))
    assert (out[0, :, :, 2:7, 1:5] == 1).all() and (out[0] == 1).sum() == 3 * 4 * 5 * 4
    assert (out[1, :, :, 2:7, 1:5] == 0).all()


def test_multilabel_mix_and_no_mixing():
    mixer = Mixer(MultiLabelClassification(["a", "b", "c"]), mixup_alpha=0.8, label_smoothing=0.2, seed=0)
    clips, _ = _batch(b=4, t=2, s=8)
    targets = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    out = mixer(clips, targets)
    # constant clip i mixed with j: recover j, then each class mixes as λ·y_i + (1-λ)·y_j of the
    # per-class smoothed targets y·(1-ε) + ε/2
    assert out.mode == "mixup" and out.lam < 0.999
    j = ((out.clips[:, 0, 0, 0, 0] - out.lam * clips[:, 0, 0, 0, 0]) / (1 - out.lam)).round().long()
    assert sorted(j.tolist()) == [0, 1, 2, 3] and j.tolist() != [0, 1, 2, 3]
    smoothed = targets * 0.8 + 0.1
    assert torch.allclose(out.targets, out.lam * smoothed + (1 - out.lam) * smoothed[j], atol=1e-5)
    plain = Mixer(Classification(["a", "b", "c"]))
    res = plain(clips, torch.tensor([0, 1, 2, 0]))
    assert res.mode == "none" and res.clips is clips and res.targets[0].tolist() == [1.0, 0.0, 0.0]


def test_state_dict_reproduces_mixing():
    a = Mixer(FOUR, mixup_alpha=0.8, cutmix_alpha=1.0, seed=1)
    a(*_batch())
    state = a.state_dict()
    first = a(*_batch())
    b = Mixer(FOUR, mixup_alpha=0.8, cutmix_alpha=1.0, seed=99)
    b.load_state_dict(state)
    second = b(*_batch())
    assert first.mode == second.mode and first.lam == second.lam
    assert torch.equal(first.clips, second.clips)


def test_a_task_whose_targets_cannot_be_mixed_refuses_mixup():
    class Boxes(Classification):
        mixable = False

    assert Mixer(Boxes(["a"])).enabled is False  # no mixing asked: fine
    with pytest.raises(ConfigError, match="cannot be mixed"):
        Mixer(Boxes(["a"]), cutmix_alpha=1.0)
