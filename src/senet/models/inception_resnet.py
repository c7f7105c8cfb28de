"""Inception-ResNet-v2 and SE-Inception-ResNet-v2 (arXiv 1709.01507, Table 2; 299x299 input).

The network is Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning" (AAAI 2017), in the layout of its public release (TF-slim, and the ports in timm and
Cadene's pretrainedmodels): stem to 192 x 35 x 35, ``mixed_5b`` (320), 10 x block A (35 x 35, residual scale
0.17), ``mixed_6a`` (1088), 20 x block B (17 x 17, scale 0.10), ``mixed_7a`` (2080), 10 x block C (8 x 8; scale
0.20 for the first nine, while the tenth uses scale 1.0 and no ReLU), a 1x1 conv to 1536, global pooling,
classifier: 55.84M parameters.

SE-Inception-ResNet-v2 puts SE (hidden width C/16) on the non-identity branch of every residual Inception module,
after the 1x1 up-projection and before the scaled addition (the paper's Fig. 2 and 3 applied to Inception-ResNet).
The three reduction/mixing modules (``mixed_5b``, ``mixed_6a``, ``mixed_7a``) are not residual and carry no SE.

Complexity: 13.16 GMACs at 299x299 (the released layout; NASNet's table gives the same 13.2 B multiply-adds).
Table 2 prints 11.75: that figure is not reproduced by this layout - see :mod:`senet.paper` for the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from senet.layers import AttnFactory, make_attn_factory
from senet.models.common import ClassifierNet, ConvBnAct, MaxPool2d, init_conv_bn
from senet.models.registry import register_model

__all__ = [
    "Concat",
    "InceptionResNetV2",
    "InceptionResidual",
    "block_a_branches",
    "block_b_branches",
    "block_c_branches",
    "inception_resnet_v2",
    "se_inception_resnet_v2",
]

_EPS = 1e-3  # the release's BatchNorm epsilon


def _conv(in_ch: int, out_ch: int, kernel_size: int | tuple[int, int], stride: int = 1,
          padding: int | tuple[int, int] = 0) -> ConvBnAct:
    return ConvBnAct(in_ch, out_ch, kernel_size, stride, padding, bn_eps=_EPS)


class Concat(nn.Module):
    """Run branches on the same input and concatenate them along channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def block_a_branches(c: int) -> Concat:
    """Block A (35 x 35): 1x1 32 | 1x1 32 -> 3x3 32 | 1x1 32 -> 3x3 48 -> 3x3 64 (128 channels)."""
    return Concat(_conv(c, 32, 1), nn.Sequential(_conv(c, 32, 1), _conv(32, 32, 3, 1, 1)),
                  nn.Sequential(_conv(c, 32, 1), _conv(32, 48, 3, 1, 1), _conv(48, 64, 3, 1, 1)))


def block_b_branches(c: int) -> Concat:
    """Block B (17 x 17): 1x1 192 | 1x1 128 -> 1x7 160 -> 7x1 192 (384 channels)."""
    return Concat(_conv(c, 192, 1), nn.Sequential(_conv(c, 128, 1), _conv(128, 160, (1, 7), 1, (0, 3)),
                                                  _conv(160, 192, (7, 1), 1, (3, 0))))


def block_c_branches(c: int) -> Concat:
    """Block C (8 x 8): 1x1 192 | 1x1 192 -> 1x3 224 -> 3x1 256 (448 channels)."""
    return Concat(_conv(c, 192, 1), nn.Sequential(_conv(c, 192, 1), _conv(192, 224, (1, 3), 1, (0, 1)),
                                                  _conv(224, 256, (3, 1), 1, (1, 0))))


class InceptionResidual(nn.Module):
    """x -> act(x + scale * SE(up(branches(x)))); ``up`` is a 1x1 conv with bias back to the input width."""

    def __init__(self, channels: int, branches: Concat, branch_channels: int, scale: float, *,
                 activate: bool = True, attn_factory: AttnFactory | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.branches = branches
        self.up = nn.Conv2d(branch_channels, channels, 1)
        self.se = attn_factory(channels) if attn_factory is not None else None
        self.act = nn.ReLU(inplace=True) if activate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.up(self.branches(x))
        if self.se is not None:
            out = self.se(out)
        return self.act(x + self.scale * out)


class InceptionResNetV2(ClassifierNet):
    """Inception-ResNet-v2; ``attn_layer="se"`` gives SE-Inception-ResNet-v2 (see the module docstring).

    Attention modules sit at ``repeat_a.I.se``, ``repeat_b.I.se`` and ``repeat_c.I.se``. The stem's unpadded
    convolutions need an input of at least 75 x 75. Stages: ``repeat_a`` (/8), ``repeat_b`` (/16) and
    ``conv_final`` (/32); the unpadded convolutions make the maps a little smaller than H / reduction.
    """

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 attn_layer: str | Callable[..., nn.Module] | None = None, reduction: float | None = None,
                 squeeze: str | None = None, gate: str | None = None, se_bias: bool | None = None,
                 attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        factory = make_attn_factory(attn_layer, reduction=reduction, squeeze=squeeze, gate=gate, se_bias=se_bias,
                                    attn_kwargs=attn_kwargs)
        self.in_chans = self.check_in_chans(in_chans)
        self.default_input_size = (in_chans, 299, 299)
        self.min_input_size = 75
        self.stem = nn.Sequential(
            _conv(in_chans, 32, 3, 2), _conv(32, 32, 3), _conv(32, 64, 3, 1, 1), MaxPool2d(3, 2),
            _conv(64, 80, 1), _conv(80, 192, 3), MaxPool2d(3, 2),
        )
        self.mixed_5b = Concat(
            _conv(192, 96, 1), nn.Sequential(_conv(192, 48, 1), _conv(48, 64, 5, 1, 2)),
            nn.Sequential(_conv(192, 64, 1), _conv(64, 96, 3, 1, 1), _conv(96, 96, 3, 1, 1)),
            nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), _conv(192, 64, 1)),
        )
        self.repeat_a = nn.Sequential(*[
            InceptionResidual(320, block_a_branches(320), 128, 0.17, attn_factory=factory) for _ in range(10)])
        self.mixed_6a = Concat(
            _conv(320, 384, 3, 2),
            nn.Sequential(_conv(320, 256, 1), _conv(256, 256, 3, 1, 1), _conv(256, 384, 3, 2)),
            MaxPool2d(3, 2),
        )
        self.repeat_b = nn.Sequential(*[
            InceptionResidual(1088, block_b_branches(1088), 384, 0.10, attn_factory=factory) for _ in range(20)])
        self.mixed_7a = Concat(
            nn.Sequential(_conv(1088, 256, 1), _conv(256, 384, 3, 2)),
            nn.Sequential(_conv(1088, 256, 1), _conv(256, 288, 3, 2)),
            nn.Sequential(_conv(1088, 256, 1), _conv(256, 288, 3, 1, 1), _conv(288, 320, 3, 2)),
            MaxPool2d(3, 2),
        )
        self.repeat_c = nn.Sequential(*[
            InceptionResidual(2080, block_c_branches(2080), 448, 0.20 if i < 9 else 1.0, activate=i < 9,
                              attn_factory=factory) for i in range(10)])
        self.conv_final = _conv(2080, 1536, 1)
        self.init_head(1536, num_classes, drop_rate)
        init_conv_bn(self)
        self.body = ("stem", "mixed_5b", "repeat_a", "mixed_6a", "repeat_b", "mixed_7a", "repeat_c", "conv_final")
        self.set_stages([("repeat_a", 320, 8), ("repeat_b", 1088, 16), ("conv_final", 1536, 32)])


@register_model
def inception_resnet_v2(**kwargs: Any) -> InceptionResNetV2:
    """Inception-ResNet-v2 (299x299): 55.84M params, 13.16 GMACs (Table 2 prints 11.75)."""
    return InceptionResNetV2(**kwargs)


@register_model
def se_inception_resnet_v2(**kwargs: Any) -> InceptionResNetV2:
    """SE-Inception-ResNet-v2: SE (r = 16) on each residual module's branch before the add (Table 2: 11.76)."""
    return InceptionResNetV2(**{"attn_layer": "se", **kwargs})
