"""One parameterised ResNet family: ResNet, ResNeXt, SE-ResNet, SE-ResNeXt, SENet-154 (arXiv 1709.01507, Table 1).

:class:`ResNet` takes the unit type, stage depths and widths, the stem, the stride placement and an attention
layer (``attn_layer``, default None; ``"se"`` for the ``se_*`` models) with its placement; every registered
builder below is a few lines calling it. Module names follow torchvision (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``) and every attention module sits at ``layerI.J.se``.

Stride placement: the paper's ResNets and the official SE-ResNet release put the stride of a downsampling
bottleneck on its first 1x1 conv (and on the 1x1 projection): ``stride_in_1x1=True``, the default for
``resnet*``/``se_resnet*`` (ResNet-50: 3.86 GMACs). torchvision and timm ("v1.5") put it on the 3x3:
``stride_in_1x1=False`` (4.09 GMACs), the default for ResNeXt and SENet-154 as in their releases.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import make_attn_factory, resolve_attn
from senet.models.blocks import (
    SE_POSITIONS,
    BasicBlock,
    Bottleneck,
    ResidualUnit,
    conv3x3,
    projection_shortcut,
)
from senet.models.common import ClassifierNet, MaxPool2d, init_conv_bn
from senet.models.registry import register_model

__all__ = ["BLOCKS", "STEMS", "ResNet", "build_resnet", "check_se_stages"]

BLOCKS: dict[str, type[ResidualUnit]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
#: "default": 7x7 s2 conv + 3x3 s2 max-pool; "deep": SENet-154's three 3x3 convs (64 s2, 64, 128) + max-pool;
#: "cifar": one 3x3 s1 conv, no pooling.
STEMS = ("default", "deep", "cifar")
STEM_POOLS = ("pad", "ceil")


class ResNet(ClassifierNet):
    """A ResNet / ResNeXt / SE-ResNet with the paper's options (see the module docstring).

    Stages (``feature_info``) are ``layer1`` .. ``layerK``; a pre-activation network's final BN + ReLU is its
    :meth:`forward_final` (applied to the last map by ``forward_intermediates(norm=True)``).

    Args:
        block: ``"basic"`` or ``"bottleneck"`` (or a :class:`~senet.models.blocks.ResidualUnit` subclass).
        layers: units per residual stage; stage i of ``layers`` is the paper's stage i + 2 (conv{i+2}_x).
        widths: ``planes`` of each stage (the output is ``planes * expansion``).
        stem, stem_width: see :data:`STEMS`; ``stem_width`` is the stem's output channels.
        stem_stride: stride of the ``"cifar"`` stem's 3x3 conv (1, or 2 to run every stage at a quarter of the
            pixels - the cheap Fashion-MNIST recipe); the other stems always downsample by 4.
        stem_pool: ``"pad"`` (3x3 s2 max-pool with padding 1, torchvision) or ``"ceil"`` (no padding, ceil mode,
            as the Caffe release and its ports).
        groups, base_width: ResNeXt cardinality and width per group.
        stride_in_1x1: stride on the first 1x1 conv of a downsampling bottleneck (paper) or on the 3x3 (v1.5).
        halve_first_width: SENet-154's first 1x1 conv of each bottleneck outputs half the 3x3 width.
        down_kernel_size: 1 (1x1 projection) or 3 (SENet-154's 3x3 stride-2 projection in downsampling stages).
        preact: pre-activation units (BN -> ReLU -> conv) with a final BN + ReLU before pooling.
        attn_layer: attention name (``"se"``, ``"eca"``, ... see :data:`senet.layers.ATTN_LAYERS`), callable or None.
        se_position: one of :data:`~senet.models.blocks.SE_POSITIONS` (Table 14, Fig. 5; Table 15).
        se_stages: which of the paper's stages 2..K+1 carry attention (Table 13); default all.
        reduction, squeeze, gate, se_bias: SqueezeExcite's r, F_sq, sigma and FC biases; passed on only when set,
            so a layer that does not take one (ECA takes no ``reduction``) raises a ConfigError naming it.
        attn_kwargs: any other options for the attention layer (e.g. ``{"kernel_size": 3}`` for ECA).
        num_classes: classifier outputs (0 drops the classifier: the model returns pooled features).
        in_chans, drop_rate: input channels; dropout before the classifier (SENet-154 uses 0.2).
        relu_before_attn: a ReLU on the residual branch before the standard-position SE, as in timm's
            ``legacy_seresnet18/34`` (needed to convert their weights; see :mod:`senet.interop`).
        zero_init_last: zero the last BN of each unit so every unit starts as the identity.
    """

    def __init__(
        self,
        block: str | type[ResidualUnit],
        layers: Sequence[int],
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem: str = "default",
        stem_width: int = 64,
        stem_stride: int = 1,
        stem_pool: str = "pad",
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        halve_first_width: bool = False,
        down_kernel_size: int = 1,
        preact: bool = False,
        attn_layer: str | Callable[..., nn.Module] | None = None,
        se_position: str = "standard",
        se_stages: Sequence[int] | None = None,
        reduction: float | None = None,
        squeeze: str | None = None,
        gate: str | None = None,
        se_bias: bool | None = None,
        attn_kwargs: dict[str, Any] | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        zero_init_last: bool = False,
        relu_before_attn: bool = False,
        default_input_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        unit = _resolve_block(block)
        _check_choices(stem=(stem, STEMS), stem_pool=(stem_pool, STEM_POOLS), se_position=(se_position, SE_POSITIONS))
        if len(layers) != len(widths) or not layers or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ConfigError(
                f"layers must be positive unit counts, one per width {tuple(widths)}, got {tuple(layers)}"
            )
        if type(stem_stride) is not int or stem_stride not in (1, 2) or (stem != "cifar" and stem_stride != 1):
            raise ConfigError(f"stem_stride must be 1 or 2 and only applies to stem='cifar' (got stem_stride="
                              f"{stem_stride!r} with stem={stem!r})")
        if down_kernel_size not in (1, 3):
            raise ConfigError(f"down_kernel_size must be 1 or 3, got {down_kernel_size!r}")
        self.check_in_chans(in_chans)
        stages = len(layers)
        se_opts = {"reduction": reduction, "squeeze": squeeze, "gate": gate, "se_bias": se_bias}
        attn_factory = _attn_factory(attn_layer, se_position, se_opts, attn_kwargs)
        se_set = check_se_stages(se_stages, stages, attn_factory is not None)

        self.in_chans = in_chans
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.preact = preact
        self.stem_type = stem
        self.num_stages = stages
        self.default_input_size = tuple(default_input_size or ((3, 32, 32) if stem == "cifar" else (3, 224, 224)))
        self.default_input_size = (in_chans, *self.default_input_size[1:])
        #: Total downsampling factor: the smallest input side at which the last stage still sees 1 pixel.
        self.min_input_size = (stem_stride if stem == "cifar" else 4) * 2 ** (stages - 1)

        self._build_stem(stem, stem_width, stem_stride, stem_pool, in_chans)
        inplanes = stem_width
        for i, (n, planes) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            out_ch = planes * unit.expansion
            downsample = None
            if stride != 1 or inplanes != out_ch:
                downsample = projection_shortcut(inplanes, out_ch, stride, down_kernel_size, preact)
            units = []
            for j in range(n):
                units.append(unit(
                    inplanes if j == 0 else out_ch, planes, stride if j == 0 else 1, downsample if j == 0 else None,
                    groups=groups, base_width=base_width, stride_in_1x1=stride_in_1x1,
                    halve_first_width=halve_first_width, preact=preact, se_position=se_position,
                    attn_factory=attn_factory if i + 2 in se_set else None,
                ))
            for u in units:
                u.relu_before_attn = relu_before_attn
            self.add_module(f"layer{i + 1}", nn.Sequential(*units))
            inplanes = out_ch
        self.final_bn = nn.BatchNorm2d(inplanes) if preact else None
        self.init_head(inplanes, num_classes, drop_rate)
        self._init_weights(zero_init_last)
        self.body = tuple(f"layer{i + 1}" for i in range(stages))
        stem_reduction = stem_stride if stem == "cifar" else 4
        self.set_stages([(f"layer{i + 1}", w * unit.expansion, stem_reduction * 2 ** i) for i, w in enumerate(widths)])

    head_modules = ("final_bn", "fc")

    # -- construction helpers ------------------------------------------------------------------------------
    def _build_stem(self, stem: str, width: int, stride: int, pool: str, in_chans: int) -> None:
        self.relu = nn.ReLU(inplace=True)
        if stem == "default":
            convs = [nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)]
        elif stem == "deep":  # SENet-154: 3x3 (w/2, s2), 3x3 (w/2), 3x3 (w); w = 128
            half = width // 2
            convs = [conv3x3(in_chans, half, 2), conv3x3(half, half), conv3x3(half, width)]
        else:
            convs = [conv3x3(in_chans, width, stride)]
        self.stem_convs = len(convs)
        for k, conv in enumerate(convs, start=1):
            self.add_module(f"conv{k}", conv)
            # A pre-activation network starts with a bare conv: the first unit applies BN + ReLU.
            if not (self.preact and stem == "cifar"):
                self.add_module(f"bn{k}", nn.BatchNorm2d(conv.out_channels))
        if stem == "cifar":
            self.maxpool = None
        else:
            self.maxpool = MaxPool2d(3, 2, padding=1) if pool == "pad" else MaxPool2d(3, 2, ceil_mode=True)

    def _init_weights(self, zero_init_last: bool) -> None:
        init_conv_bn(self)  # He-normal convs, identity BNs; attention modules keep their own initialisation
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, ResidualUnit) and not m.preact:
                    nn.init.zeros_(m.bn3.weight if isinstance(m, Bottleneck) else m.bn2.weight)

    # -- forward -------------------------------------------------------------------------------------------
    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The stem: conv(s) + BN + ReLU, then the max-pool (none for the CIFAR stem)."""
        for k in range(1, self.stem_convs + 1):
            x = getattr(self, f"conv{k}")(x)
            bn = getattr(self, f"bn{k}", None)
            if bn is not None:
                x = self.relu(bn(x))
        if self.maxpool is not None:
            x = self.maxpool(x)
        return x

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """The final BN + ReLU of a pre-activation network (nothing otherwise)."""
        return x if self.final_bn is None else self.relu(self.final_bn(x))


def _resolve_block(block: str | type[ResidualUnit]) -> type[ResidualUnit]:
    if isinstance(block, str):
        if block not in BLOCKS:
            raise ConfigError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
        return BLOCKS[block]
    if isinstance(block, type) and issubclass(block, ResidualUnit):
        return block
    raise ConfigError(f"block must be one of {', '.join(BLOCKS)} or a ResidualUnit subclass, got {block!r}")


def _check_choices(**checks: tuple[str, Sequence[str]]) -> None:
    for arg, (value, allowed) in checks.items():
        if value not in allowed:
            raise ConfigError(f"unknown {arg} {value!r}; choose one of {', '.join(allowed)}")


def _attn_factory(attn_layer, se_position: str, se_opts: dict[str, Any], attn_kwargs: dict[str, Any] | None):
    """``make_attn_factory``, also refusing a non-standard ``se_position`` when there is no attention layer."""
    if resolve_attn(attn_layer) is None and se_position != "standard":
        raise ConfigError(f"se_position={se_position!r} only takes effect with an attention layer, but attn_layer is "
                          "None; set attn_layer='se' (or use the se_* model)")
    return make_attn_factory(attn_layer, **se_opts, attn_kwargs=attn_kwargs)


def check_se_stages(se_stages: Sequence[int] | None, stages: int, has_attn: bool) -> set[int]:
    """The set of paper stages (2..stages+1) that get attention; a ConfigError for anything else."""
    allowed = range(2, stages + 2)
    if se_stages is None:
        return set(allowed)
    if not has_attn:
        raise ConfigError("se_stages only applies with an attention layer, but attn_layer is None")
    if isinstance(se_stages, int) and not isinstance(se_stages, bool):
        se_stages = [se_stages]
    if not isinstance(se_stages, (list, tuple)) or not se_stages:
        raise ConfigError(
            f"se_stages must be a non-empty list of stages {allowed[0]}..{allowed[-1]}, got {se_stages!r}"
        )
    bad = [s for s in se_stages if not isinstance(s, int) or isinstance(s, bool) or s not in allowed]
    if bad:
        raise ConfigError(
            f"se_stages {list(se_stages)} contains {bad}: stages are numbered {allowed[0]}..{allowed[-1]} "
            f"like conv{allowed[0]}_x..conv{allowed[-1]}_x"
        )
    return set(se_stages)


_RESNET_ARGS = [p for p in inspect.signature(ResNet.__init__).parameters if p not in ("self", "block", "layers")]


def build_resnet(block: str, layers: Sequence[int], defaults: dict[str, Any], kwargs: dict[str, Any]) -> ResNet:
    """Build a :class:`ResNet` from a registered model's ``defaults`` overridden by the user's ``kwargs``."""
    unknown = [k for k in kwargs if k not in _RESNET_ARGS]
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(unknown)}; ResNet models accept {', '.join(_RESNET_ARGS)}")
    return ResNet(block, layers, **{**defaults, **kwargs})


_PAPER = {"stride_in_1x1": True}
_V15 = {"stride_in_1x1": False}
_SE = {"attn_layer": "se"}
_RESNEXT_32x4d = {"groups": 32, "base_width": 4, **_V15}
_SENET154 = {"groups": 64, "base_width": 4, "stem": "deep", "stem_width": 128, "halve_first_width": True,
             "down_kernel_size": 3, "drop_rate": 0.2, **_V15, **_SE}


@register_model
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (basic units [2, 2, 2, 2])."""
    return build_resnet("basic", (2, 2, 2, 2), _PAPER, kwargs)


@register_model
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (basic units [3, 4, 6, 3])."""
    return build_resnet("basic", (3, 4, 6, 3), _PAPER, kwargs)


@register_model
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (bottlenecks [3, 4, 6, 3]; stride on the first 1x1: 25.6M params, 3.86 GMACs)."""
    return build_resnet("bottleneck", (3, 4, 6, 3), _PAPER, kwargs)


@register_model
def resnet101(**kwargs: Any) -> ResNet:
    """ResNet-101 (bottlenecks [3, 4, 23, 3]; 7.58 GMACs)."""
    return build_resnet("bottleneck", (3, 4, 23, 3), _PAPER, kwargs)


@register_model
def resnet152(**kwargs: Any) -> ResNet:
    """ResNet-152 (bottlenecks [3, 8, 36, 3]; 11.30 GMACs)."""
    return build_resnet("bottleneck", (3, 8, 36, 3), _PAPER, kwargs)


@register_model
def se_resnet18(**kwargs: Any) -> ResNet:
    """SE-ResNet-18 (not in the paper): SE (r = 16) on every basic unit's residual branch."""
    return build_resnet("basic", (2, 2, 2, 2), {**_PAPER, **_SE}, kwargs)


@register_model
def se_resnet34(**kwargs: Any) -> ResNet:
    """SE-ResNet-34 (not in the paper): SE (r = 16) on every basic unit's residual branch."""
    return build_resnet("basic", (3, 4, 6, 3), {**_PAPER, **_SE}, kwargs)


@register_model
def se_resnet50(**kwargs: Any) -> ResNet:
    """SE-ResNet-50 (Table 1): 28.09M params with FC biases (28.07M without), 3.87 GMACs."""
    return build_resnet("bottleneck", (3, 4, 6, 3), {**_PAPER, **_SE}, kwargs)


@register_model
def se_resnet101(**kwargs: Any) -> ResNet:
    """SE-ResNet-101 (Table 2: 7.60 GMACs)."""
    return build_resnet("bottleneck", (3, 4, 23, 3), {**_PAPER, **_SE}, kwargs)


@register_model
def se_resnet152(**kwargs: Any) -> ResNet:
    """SE-ResNet-152 (Table 2: 11.32 GMACs)."""
    return build_resnet("bottleneck", (3, 8, 36, 3), {**_PAPER, **_SE}, kwargs)


@register_model
def resnext50_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-50 (32x4d), stride on the grouped 3x3 (Table 2: 4.24 GMACs)."""
    return build_resnet("bottleneck", (3, 4, 6, 3), _RESNEXT_32x4d, kwargs)


@register_model
def resnext101_32x4d(**kwargs: Any) -> ResNet:
    """ResNeXt-101 (32x4d), stride on the grouped 3x3 (Table 2: 7.99 GMACs)."""
    return build_resnet("bottleneck", (3, 4, 23, 3), _RESNEXT_32x4d, kwargs)


@register_model
def se_resnext50_32x4d(**kwargs: Any) -> ResNet:
    """SE-ResNeXt-50 (32x4d) (Table 1; Table 2: 4.25 GMACs)."""
    return build_resnet("bottleneck", (3, 4, 6, 3), {**_RESNEXT_32x4d, **_SE}, kwargs)


@register_model
def se_resnext101_32x4d(**kwargs: Any) -> ResNet:
    """SE-ResNeXt-101 (32x4d) (Table 2: 8.00 GMACs)."""
    return build_resnet("bottleneck", (3, 4, 23, 3), {**_RESNEXT_32x4d, **_SE}, kwargs)


@register_model
def senet154(**kwargs: Any) -> ResNet:
    """SENet-154: SE on a 64x4d ResNeXt-152 with a deep stem, halved first 1x1, 3x3 projections, dropout 0.2."""
    return build_resnet("bottleneck", (3, 8, 36, 3), _SENET154, kwargs)


# --- timm's names -------------------------------------------------------------------------------------------
# timm's SE-ResNets put the stride on the 3x3 ("v1.5") and round C/16 to a multiple of 8 (rd_divisor); module
# names already match torchvision's and timm's, so these build timm's architecture key for key and a timm state
# dict loads strictly (tests/test_contract.py checks each against the installed timm).
_TIMM_SE = {**_V15, **_SE, "attn_kwargs": {"rd_divisor": 8}}


def _timm_alias(name: str, block: str, layers: tuple[int, ...], extra: dict[str, Any], doc: str) -> None:
    def build(**kwargs: Any) -> ResNet:
        return build_resnet(block, layers, {**_TIMM_SE, **extra}, kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"timm's ``{name}``: {doc}"
    register_model(build)


_timm_alias("seresnet18", "basic", (2, 2, 2, 2), {}, "SE-ResNet-18 (basic units, SE on each residual branch).")
_timm_alias("seresnet34", "basic", (3, 4, 6, 3), {}, "SE-ResNet-34 (basic units, SE on each residual branch).")
_timm_alias("seresnet50", "bottleneck", (3, 4, 6, 3), {}, "SE-ResNet-50 with the stride on the 3x3.")
_timm_alias("seresnet101", "bottleneck", (3, 4, 23, 3), {}, "SE-ResNet-101 with the stride on the 3x3.")
_timm_alias("seresnet152", "bottleneck", (3, 8, 36, 3), {}, "SE-ResNet-152 with the stride on the 3x3.")
_timm_alias("seresnext50_32x4d", "bottleneck", (3, 4, 6, 3), {"groups": 32, "base_width": 4},
            "SE-ResNeXt-50 (32x4d).")
_timm_alias("seresnext101_32x4d", "bottleneck", (3, 4, 23, 3), {"groups": 32, "base_width": 4},
            "SE-ResNeXt-101 (32x4d).")
