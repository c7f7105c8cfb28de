"""CIFAR-size residual networks (32x32 or 28x28 input, any ``in_chans``), built from the same :class:`ResNet` family.

All have a 3x3 stride-1 stem of 16 channels (``stem_stride=2`` halves every stage's resolution), three residual
stages (the paper's stages 2..4, so SE blocks are named ``SE_2_*``..``SE_4_*``), no max-pool, and downsample by 4 in
total (8 with ``stem_stride=2``); ``num_classes`` defaults to 10.

* ``resnet8/14/20/32/56/110`` - He et al. 2016's CIFAR ResNets: post-activation basic units, (depth - 2) / 6 per stage,
  widths 16/32/64. Deviation: downsampling shortcuts are 1x1 projections + BN (option B) instead of the original
  zero-padded identity (option A), so they carry a few more parameters (ResNet-110: 1.73M vs 1.70M).
* ``resnet164`` - the **pre-activation** bottleneck ResNet-164 (He et al., "Identity Mappings", the 5.46% CIFAR-10
  error quoted in the paper's Table 4), 18 units per stage, outputs 64/128/256.
* ``wrn16_8`` - Wide ResNet 16-8 (Zagoruyko & Komodakis): pre-activation basic units, 2 per stage, widths
  128/256/512 (no dropout inside units).

Each ``se_*`` twin adds SE (r = 16) on every unit's residual branch; every :class:`ResNet` keyword works here.
"""

from __future__ import annotations

from typing import Any

from senet.models.registry import register_model
from senet.models.resnet import ResNet, build_resnet

__all__ = ["cifar_resnet"]

_CIFAR = {"stem": "cifar", "stem_width": 16, "widths": (16, 32, 64), "num_classes": 10}
_PREACT = {**_CIFAR, "preact": True}
_WRN16_8 = {**_PREACT, "widths": (128, 256, 512)}
_SE = {"attn_layer": "se"}


def cifar_resnet(depth: int, se: bool, kwargs: dict[str, Any]) -> ResNet:
    """A post-activation CIFAR ResNet of ``depth`` = 6n + 2 layers (n basic units per stage)."""
    n = (depth - 2) // 6
    return build_resnet("basic", (n, n, n), {**_CIFAR, **(_SE if se else {})}, kwargs)


@register_model
def resnet8(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-8 (1 basic unit per stage): the shallowest of the family, for fast small-image recipes."""
    return cifar_resnet(8, False, kwargs)


@register_model
def resnet14(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-14 (2 basic units per stage)."""
    return cifar_resnet(14, False, kwargs)


@register_model
def resnet20(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-20 (3 basic units per stage; 0.27M params)."""
    return cifar_resnet(20, False, kwargs)


@register_model
def resnet32(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-32 (5 basic units per stage)."""
    return cifar_resnet(32, False, kwargs)


@register_model
def resnet56(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-56 (9 basic units per stage)."""
    return cifar_resnet(56, False, kwargs)


@register_model
def resnet110(**kwargs: Any) -> ResNet:
    """CIFAR ResNet-110 (18 basic units per stage; paper CIFAR-10 error 6.37%)."""
    return cifar_resnet(110, False, kwargs)


@register_model
def resnet164(**kwargs: Any) -> ResNet:
    """CIFAR pre-activation ResNet-164 (18 bottlenecks per stage; paper CIFAR-10 error 5.46%)."""
    return build_resnet("bottleneck", (18, 18, 18), _PREACT, kwargs)


@register_model
def wrn16_8(**kwargs: Any) -> ResNet:
    """Wide ResNet 16-8 (pre-activation, 2 basic units per stage, widths 128/256/512; CIFAR-10 error 4.27%)."""
    return build_resnet("basic", (2, 2, 2), _WRN16_8, kwargs)


@register_model
def se_resnet8(**kwargs: Any) -> ResNet:
    """SE-ResNet-8 for CIFAR (SE blocks SE_2_1, SE_3_1, SE_4_1)."""
    return cifar_resnet(8, True, kwargs)


@register_model
def se_resnet14(**kwargs: Any) -> ResNet:
    """SE-ResNet-14 for CIFAR (SE blocks SE_2_1..SE_4_2)."""
    return cifar_resnet(14, True, kwargs)


@register_model
def se_resnet20(**kwargs: Any) -> ResNet:
    """SE-ResNet-20 for CIFAR (SE blocks SE_2_1..SE_4_3)."""
    return cifar_resnet(20, True, kwargs)


@register_model
def se_resnet32(**kwargs: Any) -> ResNet:
    """SE-ResNet-32 for CIFAR."""
    return cifar_resnet(32, True, kwargs)


@register_model
def se_resnet56(**kwargs: Any) -> ResNet:
    """SE-ResNet-56 for CIFAR."""
    return cifar_resnet(56, True, kwargs)


@register_model
def se_resnet110(**kwargs: Any) -> ResNet:
    """SE-ResNet-110 for CIFAR (paper CIFAR-10 error 5.21%)."""
    return cifar_resnet(110, True, kwargs)


@register_model
def se_resnet164(**kwargs: Any) -> ResNet:
    """SE-ResNet-164 for CIFAR, pre-activation (paper CIFAR-10 error 4.39%)."""
    return build_resnet("bottleneck", (18, 18, 18), {**_PREACT, **_SE}, kwargs)


@register_model
def se_wrn16_8(**kwargs: Any) -> ResNet:
    """SE-WRN-16-8 for CIFAR (paper CIFAR-10 error 3.88%)."""
    return build_resnet("basic", (2, 2, 2), {**_WRN16_8, **_SE}, kwargs)
