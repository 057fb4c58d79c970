"""Sub-batch BatchNorm (paper §3.2): per-group statistics in training, merged population statistics in eval."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidgrid.engine.subbatch_bn import (
    SubBatchNorm3d,
    convert_to_sub_batch_norm,
    set_bn_groups,
)


def randomised_bn(channels=4, **kwargs):
    bn = SubBatchNorm3d(channels, **kwargs)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_training_equals_plain_bn_on_each_group(groups):
    torch.manual_seed(0)
    bn = randomised_bn(num_groups=groups)
    x = torch.randn(8, 4, 3, 5, 5) * 2 + torch.arange(8.0).view(8, 1, 1, 1, 1)  # groups differ
    x.requires_grad_(True)
    y = bn(x)
    expected = torch.empty_like(y)
    for k in range(groups):  # group k holds clips k, k+g, ...
        expected[k::groups] = F.batch_norm(x[k::groups], None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
    torch.testing.assert_close(y, expected)
    # gradients flow like per-group BN too
    (g1,) = torch.autograd.grad(y.square().sum(), x)
    (g2,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(g1, g2)


def test_running_statistics_merge_to_the_population():
    torch.manual_seed(0)
    bn = randomised_bn(num_groups=4, momentum=1.0)
    x = torch.randn(8, 4, 2, 3, 3) + 3 * torch.randn(8, 1, 1, 1, 1)
    bn(x)
    groups = torch.stack([x[k::4] for k in range(4)])  # (g, N/g, C, T, H, W)
    means = groups.mean(dim=(1, 3, 4, 5))  # (g, C)
    variances = groups.var(dim=(1, 3, 4, 5), unbiased=False)
    merged = variances.mean(0) + means.var(0, unbiased=False)  # mean of variances + variance of means
    count = x.numel() // 4
    torch.testing.assert_close(bn.running_mean, means.mean(0))
    torch.testing.assert_close(bn.running_var, merged * count / (count - 1))
    # = what plain BN tracks over the whole batch
    plain = nn.BatchNorm3d(4, momentum=1.0)
    plain(x)
    torch.testing.assert_close(bn.running_mean, plain.running_mean)
    torch.testing.assert_close(bn.running_var, plain.running_var)
    assert int(bn.num_batches_tracked) == 1


def test_eval_uses_merged_statistics_like_plain_bn():
    torch.manual_seed(0)
    bn = randomised_bn(num_groups=2, momentum=None)  # cumulative average over steps
    plain = nn.BatchNorm3d(4, momentum=None)
    plain.load_state_dict(bn.state_dict())
    for _ in range(3):
        x = torch.randn(6, 4, 2, 4, 4) * 3 + 1
        bn(x)
        plain(x)
    bn.eval(), plain.eval()
    x = torch.randn(5, 4, 2, 4, 4)
    torch.testing.assert_close(bn(x), plain(x))
    torch.testing.assert_close(bn.running_var, plain.running_var)


def test_batch_not_divisible_uses_the_largest_dividing_group_count():
    torch.manual_seed(0)
    bn = randomised_bn(num_groups=4)
    x = torch.randn(6, 4, 2, 3, 3)
    expected = torch.cat([F.batch_norm(x[k::3], None, None, bn.weight, bn.bias, training=True) for k in range(3)])
    order = [k + 3 * j for k in range(3) for j in range(2)]
    torch.testing.assert_close(bn(x)[order], expected)  # 6 clips, 4 groups asked -> 3 groups of 2
    x = torch.randn(7, 4, 2, 3, 3)  # prime: one group, plain BN
    torch.testing.assert_close(bn(x), F.batch_norm(x, None, None, bn.weight, bn.bias, training=True))
    x = torch.randn(4, 4, 1, 1, 1)  # pooled features: groups keep more than one value per channel
    torch.testing.assert_close(bn(x)[[0, 2, 1, 3]], torch.cat([
        F.batch_norm(x[k::2], None, None, bn.weight, bn.bias, training=True) for k in range(2)
    ]))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.BatchNorm1d(4), nn.Linear(4, 2))

    def forward(self, x):
        return self.head(self.stem(x))


def test_convert_in_place_keeps_parameters_and_state_dict():
    torch.manual_seed(0)
    model = Tiny()
    model.train()
    model(torch.randn(4, 3, 2, 8, 8))  # non-trivial running statistics
    model.eval()
    params = list(model.parameters())
    x = torch.randn(2, 3, 2, 8, 8)
    before, keys = model(x), {k: v.shape for k, v in model.state_dict().items()}
    assert convert_to_sub_batch_norm(model) is model
    assert isinstance(model.stem[1], SubBatchNorm3d) and type(model.head[2]) is nn.BatchNorm1d
    assert list(model.parameters()) == params  # the same tensors: an optimizer built earlier still works
    assert {k: v.shape for k, v in model.state_dict().items()} == keys
    torch.testing.assert_close(model(x), before)
    set_bn_groups(model, 2)
    assert model.stem[1].num_groups == 2
    model.train()
    model(torch.randn(4, 3, 2, 8, 8)).sum().backward()
    # a checkpoint of the converted model loads into a model without multigrid
    plain = Tiny()
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    torch.testing.assert_close(plain(x), model(x))


def test_set_bn_groups_rejects_zero():
    with pytest.raises(ValueError):
        set_bn_groups(Tiny(), 0)
