"""VGG-16 with batch norm and SE-VGG-16 (arXiv 1709.01507, Table 2: 15.47 -> 15.48 GMACs at 224x224).

VGG-16 (Simonyan & Zisserman 2015, configuration D) with BN after every conv, as the paper trains it: thirteen
3x3 convs in five stages (64, 128, 256, 512, 512 channels, each stage ending in a 2x2 max-pool), a 7x7 adaptive
average pool, and the classifier 25088 -> 4096 -> 4096 -> classes with ReLU and dropout: 138.37M parameters.
SE-VGG-16 inserts an SE block (hidden width C/16) after the non-linearity that follows each convolution.

Convolutions are named after the paper's layers, ``features.conv<stage>_<index>`` (``conv1_1`` .. ``conv5_3``),
and each one's attention module sits at ``features.conv<stage>_<index>.se``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from senet.layers import AttnFactory, make_attn_factory
from senet.models.common import ClassifierNet, MaxPool2d, init_conv_bn
from senet.models.registry import register_model

__all__ = ["VGG", "VGG16_STAGES", "ConvUnit", "se_vgg16_bn", "vgg16_bn"]

#: Configuration D: (convs, channels) per stage.
VGG16_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


class ConvUnit(nn.Module):
    """3x3 conv -> BN -> ReLU -> attention (``se``, None for plain VGG)."""

    def __init__(self, in_ch: int, out_ch: int, attn_factory: AttnFactory | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.se = attn_factory(out_ch) if attn_factory is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        return self.se(x) if self.se is not None else x


class VGG(ClassifierNet):
    """VGG with BN; ``attn_layer="se"`` gives SE-VGG (see the module docstring).

    ``drop_rate`` is the dropout of the two hidden classifier layers (0.5 as in the original). ``forward_head``
    pools to 7 x 7 (replicating a smaller map, so inputs down to 32 x 32 work) and runs the classifier MLP;
    ``pre_logits=True`` (and ``num_classes=0``) gives the MLP's ``hidden`` outputs. Stages: each stage's last conv
    unit (``features.conv1_2`` /1 .. ``features.conv5_3`` /16) and the final pool ``features.pool5`` (/32).
    """

    def __init__(self, stages: tuple[tuple[int, int], ...] = VGG16_STAGES, *, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.5, hidden: int = 4096,
                 attn_layer: str | Callable[..., nn.Module] | None = None, reduction: float | None = None,
                 squeeze: str | None = None, gate: str | None = None, se_bias: bool | None = None,
                 attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        factory = make_attn_factory(attn_layer, reduction=reduction, squeeze=squeeze, gate=gate, se_bias=se_bias,
                                    attn_kwargs=attn_kwargs)
        self.in_chans = self.check_in_chans(in_chans)
        self.default_input_size = (in_chans, 224, 224)
        self.min_input_size = 2 ** len(stages)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_chans
        for s, (n, width) in enumerate(stages, start=1):
            for i in range(1, n + 1):
                layers[f"conv{s}_{i}"] = ConvUnit(channels, width, factory)
                channels = width
            layers[f"pool{s}"] = MaxPool2d(2, 2)
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.init_head(channels, num_classes, drop_rate, fc_in=hidden)
        self.pre_logits = nn.Sequential(
            nn.Linear(channels * 49, hidden), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        )
        init_conv_bn(self)
        self.body = tuple(f"features.{name}" for name in layers)
        # Each stage's last conv unit (before its pool), then the final pool: /1 /2 ... /2^(S-1), /2^S.
        ends = [(f"features.conv{s}_{n}", width, 2 ** (s - 1)) for s, (n, width) in enumerate(stages, start=1)]
        self.set_stages([*ends, (f"features.pool{len(stages)}", channels, 2 ** len(stages))])

    head_modules = ("pre_logits", "fc")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pre_logits(torch.flatten(self.pool(x), 1)))
        return x if pre_logits else self.fc(x)


@register_model
def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 with BN (138.37M params, 15.47 GMACs at 224x224; Table 2)."""
    return VGG(VGG16_STAGES, **kwargs)


@register_model
def se_vgg16_bn(**kwargs: Any) -> VGG:
    """SE-VGG-16: SE (r = 16) after the ReLU that follows each of the 13 convs (Table 2: 15.48 GMACs)."""
    return VGG(VGG16_STAGES, **{"attn_layer": "se", **kwargs})
