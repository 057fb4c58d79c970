"""Blocks shared by every model family: stochastic depth, squeeze-excitation, the residual bottleneck
of the conv families, the classification head, the common model face (:class:`VideoModel`) and
weight initialisation.

Each family module (``x3d``, ``resnet3d``, ``mvit``) builds on these so that no family copies them.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

Features = Tensor | Sequence[Tensor]
"""What ``forward_features`` returns: one (B, C, T, H, W) map, or one per pathway (SlowFast)."""

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., ECCV 2016): drop a residual branch per sample with rate ``p``.

    Kept branches are scaled by 1/(1-p) so the expectation is unchanged; identity in eval mode.
    X3D calls it drop-connect (X3D supplement §A.3); MViT uses it in every block.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (B, 1, ..., 1)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(rate: float, num_blocks: int) -> list[float]:
    """Per-block stochastic-depth rates rising linearly from 0 to ``rate`` over the network depth."""
    if num_blocks <= 1:
        return [rate] * num_blocks
    return [rate * i / (num_blocks - 1) for i in range(num_blocks)]


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018) on (B, C, T, H, W): global pool → 1×1³ conv →
    ReLU → 1×1³ conv → sigmoid → channel-wise gate."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(channels, hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv3d(hidden, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=(2, 3, 4), keepdim=True)  # (B, C, T, H, W) -> (B, C, 1, 1, 1)
        s = self.fc2(self.act(self.fc1(s)))
        return x * s.sigmoid()


class Bottleneck(nn.Module):
    """Residual bottleneck block (He et al., CVPR 2016) in its 3-D forms, following PySlowFast's
    layout: 1×1-ish ``conv_a`` → BN → ReLU → ``conv_b`` (spatial stride here) → BN → [SE] →
    ReLU or swish → 1×1×1 ``conv_c`` → BN, added to the (projected) shortcut, then ReLU.

    ResNet-3D (SlowFast paper Table 1): ``kernel_a`` = (t, 1, 1), ``kernel_b`` = (1, 3, 3).
    X3D (supplement §A.3): ``kernel_a`` = (1, 1, 1), ``kernel_b`` = (3, 3, 3) channel-wise
    (``groups_b`` = channels), SE after it in every other block, swish only there.
    The shortcut is a strided 1×1×1 conv when the width or the resolution changes, followed by BN
    only when the width changes (PyTorchVideo's rule; X3D's res2 keeps its width, and the published
    X3D-S count of 3,794,274 parameters has no BN there).
    """

    def __init__(
        self,
        dim_in: int,
        dim_inner: int,
        dim_out: int,
        *,
        kernel_a: tuple[int, int, int],
        kernel_b: tuple[int, int, int],
        stride: int = 1,
        groups_b: int = 1,
        se_hidden: int = 0,
        act_b: Literal["relu", "swish"] = "relu",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.shortcut = nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False)
        if dim_in != dim_out:
            self.shortcut_bn = bn3d(dim_out)
        self.conv_a = nn.Conv3d(dim_in, dim_inner, kernel_a, padding=_same(kernel_a), bias=False)
        self.bn_a = bn3d(dim_inner)
        self.conv_b = nn.Conv3d(
            dim_inner, dim_inner, kernel_b, stride=(1, stride, stride), padding=_same(kernel_b),
            groups=groups_b, bias=False,
        )
        self.bn_b = bn3d(dim_inner)
        self.se = SqueezeExcitation(dim_inner, se_hidden) if se_hidden > 0 else nn.Identity()
        self.act_b = nn.SiLU(inplace=True) if act_b == "swish" else nn.ReLU(inplace=True)
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.bn_c = bn3d(dim_out)
        self.relu = nn.ReLU(inplace=True)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.shortcut(x) if hasattr(self, "shortcut") else x
        if hasattr(self, "shortcut_bn"):
            shortcut = self.shortcut_bn(shortcut)
        y = self.relu(self.bn_a(self.conv_a(x)))
        y = self.act_b(self.se(self.bn_b(self.conv_b(y))))
        y = self.bn_c(self.conv_c(y))
        return self.relu(shortcut + self.drop_path(y))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn_c.weight)


def _same(kernel: tuple[int, int, int]) -> tuple[int, int, int]:
    """'Same' padding for odd kernels."""
    return (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)


def global_pool(features: Features) -> Tensor:
    """Average each (B, C_i, T, H, W) map over space-time and concatenate: -> (B, ΣC_i)."""
    maps = [features] if isinstance(features, Tensor) else list(features)
    return torch.cat([m.mean(dim=(2, 3, 4)) for m in maps], dim=1)


class ClassifierHead(nn.Module):
    """Global average pooling (per pathway, concatenated) → dropout → linear classifier.

    Pooling is adaptive, so the head accepts every multigrid shape. ``num_classes=0`` leaves the
    classifier out (``forward`` then returns the pooled features).
    """

    def __init__(self, in_features: int, num_classes: int, *, dropout: float) -> None:
        super().__init__()
        self.in_features = in_features
        self.dropout = nn.Dropout(dropout)
        self.fc: nn.Module = _linear(in_features, num_classes)

    def pool(self, features: Features) -> Tensor:
        """(B, C, T, H, W) map(s) -> (B, in_features), the input of dropout and classifier."""
        return global_pool(features)

    def forward(self, features: Features, pre_logits: bool = False) -> Tensor:
        z = self.pool(features)  # (B, in_features)
        return z if pre_logits else self.fc(self.dropout(z))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs."""
        device = next(self.parameters(), torch.empty(0)).device
        self.fc = _linear(self.in_features, num_classes).to(device)


def _linear(in_features: int, num_classes: int) -> nn.Module:
    """The classifier layer: N(0, 0.01²) weights and zero bias (SlowFast/X3D init), or identity."""
    if num_classes <= 0:
        return nn.Identity()
    fc = nn.Linear(in_features, num_classes)
    nn.init.normal_(fc.weight, std=0.01)
    nn.init.zeros_(fc.bias)
    return fc


class VideoModel(nn.Module):
    """The face every vidgrid model shows (timm-style).

    Subclasses implement ``forward_features`` and put every head layer in ``self.head`` (a
    :class:`ClassifierHead`); the optimizer treats everything outside ``head`` as backbone.
    The shape attributes let the trainer check multigrid shapes up front: a clip (C, T, H, W) is
    valid when ``T >= min_frames``, ``T % frames_multiple == 0`` and ``H % crop_multiple == 0``.
    """

    head: ClassifierHead
    default_input: tuple[int, int, int, int]
    """(C, T, H, W) the model was designed for (and is profiled at)."""
    default_sampling_rate: int
    """Temporal stride τ in source frames of that input (a converted model is tested at it)."""
    feature_channels: tuple[int, ...]
    """Channels of each pathway's ``forward_features`` output: dim 1 of a (B, C, T, H, W) map, the last
    dim of (B, N, C) tokens; one entry per pathway (SlowFast: Slow, Fast)."""
    min_frames: int = 1
    frames_multiple: int = 1
    crop_multiple: int = 1

    def pathway_shapes(self, input_shape: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
        """The (C, T, H, W) shape each pathway sees for an input clip of ``input_shape`` (profiling);
        one entry for single-pathway models."""
        return [tuple(input_shape)]

    def forward_features(self, x: Tensor) -> Features:
        """(B, C, T, H, W) clip -> backbone feature map(s) before global pooling."""
        raise NotImplementedError

    def forward_head(self, features: Features, pre_logits: bool = False) -> Tensor:
        """Feature map(s) -> logits (B, num_classes), or the pooled features if ``pre_logits``."""
        return self.head(features, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Re-create the classifier for ``num_classes`` outputs (0 = no classifier)."""
        self.head.reset_classifier(num_classes)

    def no_weight_decay(self) -> set[str]:
        """Names of parameters trained without weight decay: every normalisation layer's affine
        parameters (PySlowFast's ``BN.WEIGHT_DECAY = 0``); families add their own (position embeddings)."""
        return {
            f"{module_name}.{param_name}" if module_name else param_name
            for module_name, module in self.named_modules()
            if isinstance(module, _NORM_TYPES)
            for param_name, _ in module.named_parameters(recurse=False)
        }


def init_weights(model: nn.Module, *, zero_init_last: bool = True) -> None:
    """He (fan-out) initialisation for convolutions (He et al., ICCV 2015), BN at (1, 0), and — when
    ``zero_init_last`` — the last BN of every residual block at 0 (Goyal et al., 2017), so each block
    starts as the identity. Blocks opt in by defining ``zero_init_last()``. Classifiers keep their own
    N(0, 0.01²) init."""
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if zero_init_last:
        for module in model.modules():
            if hasattr(module, "zero_init_last"):
                module.zero_init_last()


def bn3d(channels: int) -> nn.BatchNorm3d:
    """The BatchNorm used in every conv family (eps 1e-5, momentum 0.1, PySlowFast defaults); a
    plain ``nn.BatchNorm3d`` so multigrid's sub-batch BN can convert it."""
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)
