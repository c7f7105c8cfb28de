"""ShuffleNet (v1, 1x, g = 3) and SE-ShuffleNet (arXiv 1709.01507, Table 3).

ShuffleNet is Zhang, Zhou, Lin & Sun, "ShuffleNet" (arXiv 1707.01083, Table 1): a 3x3 stride-2 conv to 24
channels and a 3x3 stride-2 max-pool, then three stages of 4, 8 and 4 units with 240, 480 and 960 output
channels (g = 3), global pooling and a classifier. A unit is 1x1 group conv -> BN -> ReLU -> channel shuffle ->
3x3 depthwise conv (stride) -> BN -> 1x1 group conv -> BN, joined to the input by addition (stride 1) or, in the
first unit of a stage, concatenated with a 3x3 stride-2 average pool of the input; then ReLU. The bottleneck is a
quarter of the stage width, and stage 2's first 1x1 conv is not grouped (its input has only 24 channels).

SE-ShuffleNet puts an SE block (hidden width C/16) on each unit's branch, after its last BN and before the
addition or concatenation - the SE-ResNet placement. Table 3: 140 MFLOPs / 1.8M -> 142 MFLOPs / 2.4M.

Units are ``stage2.0`` .. ``stage4.3``; each one's attention module sits at ``stageS.I.se``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import AttnFactory, make_attn_factory
from senet.models.common import ClassifierNet, ConvBnAct, MaxPool2d, init_conv_bn
from senet.models.registry import register_model

__all__ = [
    "SHUFFLENET_V1_WIDTHS",
    "ShuffleNetV1",
    "ShuffleUnit",
    "channel_shuffle",
    "se_shufflenet_v1_g3",
    "shufflenet_v1_g3",
]

#: Stage output channels at 1x for each number of groups g (Zhang et al., Table 1).
SHUFFLENET_V1_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                        8: (384, 768, 1536)}
SHUFFLENET_V1_UNITS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups: (N, g * c, H, W) -> view (N, g, c) -> transpose -> flatten."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """One ShuffleNet unit with optional attention (``se``) on the branch; see the module docstring."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int, *, group_first: bool = True,
                 attn_factory: AttnFactory | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.groups = groups
        mid = out_ch // 4
        branch_out = out_ch - in_ch if stride == 2 else out_ch
        first_groups = groups if group_first else 1
        self.shuffle_groups = first_groups
        self.conv1 = ConvBnAct(in_ch, mid, 1, groups=first_groups)
        self.dw = ConvBnAct(mid, mid, 3, stride, 1, groups=mid, act=False)
        self.conv2 = ConvBnAct(mid, branch_out, 1, groups=groups, act=False)
        self.se = attn_factory(branch_out) if attn_factory is not None else None
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        if self.shuffle_groups > 1:
            out = channel_shuffle(out, self.shuffle_groups)
        out = self.conv2(self.dw(out))
        if self.se is not None:
            out = self.se(out)
        if self.shortcut is None:
            return self.act(out + x)
        return self.act(torch.cat([self.shortcut(x), out], 1))


class ShuffleNetV1(ClassifierNet):
    """ShuffleNet v1 at 1x with ``groups`` in {1, 2, 3, 4, 8}; ``attn_layer="se"`` gives SE-ShuffleNet."""

    def __init__(self, *, groups: int = 3, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 attn_layer: str | Callable[..., nn.Module] | None = None, reduction: float | None = None,
                 squeeze: str | None = None, gate: str | None = None, se_bias: bool | None = None,
                 attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if groups not in SHUFFLENET_V1_WIDTHS:
            raise ConfigError(f"ShuffleNet groups must be one of {', '.join(map(str, SHUFFLENET_V1_WIDTHS))}, "
                              f"got {groups!r}")
        factory = make_attn_factory(attn_layer, reduction=reduction, squeeze=squeeze, gate=gate, se_bias=se_bias,
                                    attn_kwargs=attn_kwargs)
        self.in_chans = self.check_in_chans(in_chans)
        self.default_input_size = (in_chans, 224, 224)
        self.min_input_size = 1
        self.stem = nn.Sequential(ConvBnAct(in_chans, 24, 3, 2, 1), MaxPool2d(3, 2, 1))
        channels = 24
        for s, (width, n) in enumerate(zip(SHUFFLENET_V1_WIDTHS[groups], SHUFFLENET_V1_UNITS), start=2):
            units = []
            for i in range(n):
                units.append(ShuffleUnit(channels, width, 2 if i == 0 else 1, groups, group_first=channels != 24,
                                         attn_factory=factory))
                channels = width
            self.add_module(f"stage{s}", nn.Sequential(*units))
        self.init_head(channels, num_classes, drop_rate)
        init_conv_bn(self)
        self.body = ("stem", "stage2", "stage3", "stage4")
        widths = SHUFFLENET_V1_WIDTHS[groups]
        self.set_stages([("stem", 24, 4), ("stage2", widths[0], 8), ("stage3", widths[1], 16),
                         ("stage4", widths[2], 32)])


@register_model
def shufflenet_v1_g3(**kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1x, g = 3 (Table 3: 140 MFLOPs, 1.8M params)."""
    return ShuffleNetV1(**{"groups": 3, **kwargs})


@register_model
def se_shufflenet_v1_g3(**kwargs: Any) -> ShuffleNetV1:
    """SE-ShuffleNet 1x, g = 3: SE (r = 16) on each unit's branch (Table 3: 142 MFLOPs, 2.4M params)."""
    return ShuffleNetV1(**{"groups": 3, "attn_layer": "se", **kwargs})
