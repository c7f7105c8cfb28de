"""MobileNet (v1, width 1.0, 224) and SE-MobileNet (arXiv 1709.01507, Table 3).

MobileNet is Howard et al., "MobileNets" (arXiv 1704.04861, Table 1): a 3x3 stride-2 conv to 32 channels, then
13 depthwise-separable blocks (3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU) widening to
1024 channels at 7 x 7, global pooling and a classifier: 4.23M parameters, 569 M multiply-adds. SE-MobileNet puts
an SE block (hidden width C/16) at the end of each block, on the pointwise conv's output: 4.71M parameters.
Table 3: 569 MFLOPs / 4.2M -> 572 MFLOPs / 4.7M.

Blocks are ``blocks.0`` .. ``blocks.12``; each one's attention module sits at ``blocks.I.se``. ``width_mult``
scales every width (the paper's alpha), rounded down to a multiple of 8 with at least 8 channels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import AttnFactory, make_attn_factory
from senet.models.common import ClassifierNet, ConvBnAct, init_conv_bn
from senet.models.registry import register_model

__all__ = ["MOBILENET_V1_BLOCKS", "DepthwiseSeparable", "MobileNetV1", "mobilenet_v1", "se_mobilenet_v1"]

#: (output channels, stride) of the 13 depthwise-separable blocks (Howard et al., Table 1).
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv (stride) -> BN -> ReLU -> 1x1 conv -> BN -> ReLU -> attention (``se``)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, attn_factory: AttnFactory | None = None) -> None:
        super().__init__()
        self.dw = ConvBnAct(in_ch, in_ch, 3, stride, 1, groups=in_ch)
        self.pw = ConvBnAct(in_ch, out_ch, 1)
        self.se = attn_factory(out_ch) if attn_factory is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(self.dw(x))
        return self.se(x) if self.se is not None else x


def _scaled(channels: int, width_mult: float) -> int:
    return max(8, int(channels * width_mult) // 8 * 8)


class MobileNetV1(ClassifierNet):
    """MobileNet v1; ``attn_layer="se"`` gives SE-MobileNet (see the module docstring)."""

    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, attn_layer: str | Callable[..., nn.Module] | None = None,
                 reduction: float | None = None, squeeze: str | None = None, gate: str | None = None,
                 se_bias: bool | None = None, attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) or width_mult <= 0:
            raise ConfigError(f"width_mult must be a positive number such as 1.0, 0.75, 0.5, got {width_mult!r}")
        factory = make_attn_factory(attn_layer, reduction=reduction, squeeze=squeeze, gate=gate, se_bias=se_bias,
                                    attn_kwargs=attn_kwargs)
        self.in_chans = self.check_in_chans(in_chans)
        self.default_input_size = (in_chans, 224, 224)
        self.min_input_size = 1
        channels = _scaled(32, width_mult)
        self.stem = ConvBnAct(in_chans, channels, 3, 2, 1)
        blocks = []
        for out_ch, stride in MOBILENET_V1_BLOCKS:
            blocks.append(DepthwiseSeparable(channels, _scaled(out_ch, width_mult), stride, factory))
            channels = _scaled(out_ch, width_mult)
        self.blocks = nn.Sequential(*blocks)
        self.init_head(channels, num_classes, drop_rate)
        init_conv_bn(self)
        self.body = ("stem", *(f"blocks.{i}" for i in range(len(blocks))))
        # The last block at each resolution: /2 /4 /8 /16 /32.
        self.set_stages([(f"blocks.{i}", blocks[i].pw.conv.out_channels, r)
                         for i, r in ((0, 2), (2, 4), (4, 8), (10, 16), (12, 32))])


@register_model
def mobilenet_v1(**kwargs: Any) -> MobileNetV1:
    """MobileNet v1 1.0-224: 4.23M params, 569 M multiply-adds (Table 3)."""
    return MobileNetV1(**kwargs)


@register_model
def se_mobilenet_v1(**kwargs: Any) -> MobileNetV1:
    """SE-MobileNet 1.0-224: SE (r = 16) at the end of each block; 4.71M params (Table 3: 4.7M, 572 MFLOPs)."""
    return MobileNetV1(**{"attn_layer": "se", **kwargs})
