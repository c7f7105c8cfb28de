"""BN-Inception and SE-BN-Inception (arXiv 1709.01507, Table 2); the shared pieces live in :mod:`senet.models.common`.

BN-Inception is the network of Ioffe & Szegedy, "Batch Normalization" (ICML 2015, Fig. 5): GoogLeNet with BN after
every conv, 5x5 convs replaced by two 3x3 convs, and stride-2 modules 3c and 4e that concatenate a max-pooled
pass-through. SE-BN-Inception applies an SE block to the output of each of the ten Inception modules (the
SE-Inception module of the paper's Fig. 2), hidden width C/16. Input 224x224: 2.03 GMACs -> SE 2.04 (Table 2).
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
    "BNInception",
    "InceptionModule",
    "bn_inception",
    "se_bn_inception",
]



# --- BN-Inception -------------------------------------------------------------------------------------------

#: Ioffe & Szegedy (2015), Fig. 5: name -> (#1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3,
#: pool type, pool projection, stride). Stride-2 modules have no 1x1 branch and pass the max-pool through.
BN_INCEPTION_MODULES: dict[str, tuple[int, int, int, int, int, str, int, int]] = {
    "inception_3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "inception_3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "inception_3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "inception_4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "inception_4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "inception_4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "inception_4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "inception_4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "inception_5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "inception_5b": (352, 192, 320, 192, 224, "max", 128, 1),
}


class InceptionModule(nn.Module):
    """One BN-Inception module: four parallel branches concatenated, then (optionally) attention at ``se``.

    Branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (the factorised 5x5); pool (-> 1x1 projection). With stride 2
    the 3x3s that end a branch carry the stride, the 1x1 branch is absent and the max-pool passes through.
    """

    def __init__(self, in_ch: int, spec: tuple[int, int, int, int, int, str, int, int],
                 attn_factory: AttnFactory | None = None) -> None:
        super().__init__()
        c1, c3r, c3, cd3r, cd3, pool, proj, stride = spec
        self.branch1x1 = ConvBnAct(in_ch, c1, 1) if c1 else None
        self.branch3x3 = nn.Sequential(ConvBnAct(in_ch, c3r, 1), ConvBnAct(c3r, c3, 3, stride, 1))
        self.branch3x3dbl = nn.Sequential(ConvBnAct(in_ch, cd3r, 1), ConvBnAct(cd3r, cd3, 3, 1, 1),
                                          ConvBnAct(cd3, cd3, 3, stride, 1))
        # Padding 1 keeps every branch at ceil(H / stride), whatever the input size.
        pool_layer = (MaxPool2d(3, stride, 1) if pool == "max" else nn.AvgPool2d(3, stride, 1))
        self.branch_pool = nn.Sequential(pool_layer, ConvBnAct(in_ch, proj, 1)) if proj else pool_layer
        self.out_channels = c1 + c3 + cd3 + (proj or in_ch)
        self.se = attn_factory(self.out_channels) if attn_factory is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        if self.branch1x1 is not None:
            branches.insert(0, self.branch1x1(x))
        out = torch.cat(branches, 1)
        return self.se(out) if self.se is not None else out


class BNInception(ClassifierNet):
    """BN-Inception (224x224, 1024 features); ``attn_layer="se"`` gives SE-BN-Inception. See the module docstring.

    Modules are named as in the Caffe release (``inception_3a`` .. ``inception_5b``); the attention module of each
    sits at ``inception_XY.se``. Stages: ``conv1`` (/2), ``conv2`` (/4), ``inception_3b`` (/8), ``inception_4d``
    (/16), ``inception_5b`` (/32) - the last module at each resolution.
    """

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 attn_layer: str | Callable[..., nn.Module] | None = None, reduction: float | None = None,
                 squeeze: str | None = None, gate: str | None = None, se_bias: bool | None = None,
                 attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        factory = make_attn_factory(attn_layer, reduction=reduction, squeeze=squeeze, gate=gate, se_bias=se_bias,
                                    attn_kwargs=attn_kwargs)
        self.in_chans = self.check_in_chans(in_chans)
        self.default_input_size = (in_chans, 224, 224)
        self.min_input_size = 1
        self.conv1 = ConvBnAct(in_chans, 64, 7, 2, 3)
        self.pool1 = MaxPool2d(3, 2, 1)
        self.conv2_reduce = ConvBnAct(64, 64, 1)
        self.conv2 = ConvBnAct(64, 192, 3, 1, 1)
        self.pool2 = MaxPool2d(3, 2, 1)
        channels = 192
        self.module_names = list(BN_INCEPTION_MODULES)
        for name, spec in BN_INCEPTION_MODULES.items():
            module = InceptionModule(channels, spec, factory)
            self.add_module(name, module)
            channels = module.out_channels
        self.init_head(channels, num_classes, drop_rate)
        init_conv_bn(self)
        self.body = ("conv1", "pool1", "conv2_reduce", "conv2", "pool2", *self.module_names)
        self.set_stages([("conv1", 64, 2), ("conv2", 192, 4), ("inception_3b", 320, 8), ("inception_4d", 608, 16),
                         ("inception_5b", channels, 32)])


@register_model
def bn_inception(**kwargs: Any) -> BNInception:
    """BN-Inception (Ioffe & Szegedy 2015): 224x224, 2.03 GMACs (Table 2)."""
    return BNInception(**kwargs)


@register_model
def se_bn_inception(**kwargs: Any) -> BNInception:
    """SE-BN-Inception: SE (r = 16) on the output of each Inception module, 2.04 GMACs (Table 2)."""
    return BNInception(**{"attn_layer": "se", **kwargs})
