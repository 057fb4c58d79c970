"""Precise BN: running statistics recomputed as the equal-weight average over given batches."""

import torch
from torch import nn

from vidgrid.engine.precise_bn import recompute_bn_statistics
from vidgrid.engine.subbatch_bn import convert_to_sub_batch_norm


def test_recompute_bn_statistics_averages_the_batches_and_restores_the_rest():
    """Precise BN: the running statistics become the equal-weight average over the given batches
    (whatever the momentum and the earlier running values), mode and momentum come back."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4, momentum=0.1))
    model = convert_to_sub_batch_norm(model)
    bn = model[1]
    bn.running_mean.fill_(5.0)
    batches = [torch.randn(4, 3, 2, 5, 5) * (k + 1) + k for k in range(3)]
    model.eval()
    assert recompute_bn_statistics(model, batches) == 3
    with torch.no_grad():
        outputs = [model[0](b) for b in batches]
    means = torch.stack([o.mean(dim=(0, 2, 3, 4)) for o in outputs])
    variances = torch.stack([o.transpose(0, 1).reshape(4, -1).var(dim=1) for o in outputs])
    torch.testing.assert_close(bn.running_mean, means.mean(0))
    torch.testing.assert_close(bn.running_var, variances.mean(0))
    assert not model.training and bn.momentum == 0.1


def test_recompute_bn_statistics_without_batches_keeps_the_old_ones():
    model = nn.Sequential(nn.BatchNorm3d(2))
    model[0].running_mean.fill_(3.0)
    assert recompute_bn_statistics(model, []) == 0
    assert torch.equal(model[0].running_mean, torch.full((2,), 3.0))


def test_recompute_bn_statistics_runs_batches_through_the_given_forward():
    """A network that also reads boxes (detection) gets its batches as (clips, targets) through the task's forward."""

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x, shift):
            return self.bn(x + shift)

    model = TwoInputs()
    batches = [(torch.zeros(4, 2), torch.full((4, 2), 3.0)), (torch.zeros(4, 2), torch.full((4, 2), 5.0))]
    used = recompute_bn_statistics(model, batches, forward=lambda m, batch: m(*batch))
    assert used == 2 and torch.allclose(model.bn.running_mean, torch.tensor([4.0, 4.0]))
