"""Residual units with an optional attention module at any of the paper's integration points.

Every unit keeps its attention module (SE or a variant) at attribute ``se`` (None when absent), so the analysis
names it ``SE_<stage>_<block>`` and a user may set ``unit.se = None`` at any time. ``se_position`` chooses where it
sits (arXiv 1709.01507, Fig. 5, Tables 14 and 15):

* ``"standard"`` - on the residual branch after its last BN, before the addition (the SE-ResNet module, Fig. 3);
* ``"pre"``      - on the unit's input, feeding the residual branch; the identity path reads the raw input;
* ``"post"``     - after the addition and the ReLU;
* ``"identity"`` - on the shortcut path, parallel to the unit: out = ReLU(F(x) + SE(shortcut(x)));
* ``"after_3x3"`` - directly after the 3x3 conv's BN + ReLU ("SE_3x3", Table 15). In a basic unit (two 3x3
  convs) this is after the first conv's BN + ReLU, the only interior position.

Pre-activation units (He et al., "Identity Mappings in Deep Residual Networks", used by the paper's CIFAR
ResNet-164 and WRN-16-8) order each layer BN -> ReLU -> conv, have no ReLU after the addition, and feed a
projection shortcut the same pre-activated tensor as the branch.

The standard position's tail ``SE(U) + shortcut`` goes through :func:`senet.layers.se_fast.residual_tail`: the
SE module's own forward, unless its documented rules pick the opt-in fused GPU kernel.
"""

from __future__ import annotations

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import AttnFactory
from senet.layers.se_fast import residual_tail

__all__ = [
    "SE_POSITIONS",
    "BasicBlock",
    "Bottleneck",
    "ResidualUnit",
    "conv1x1",
    "conv3x3",
    "projection_shortcut",
]

#: Where a unit may carry its attention module (see the module docstring).
SE_POSITIONS = ("standard", "pre", "post", "identity", "after_3x3")


def projection_shortcut(
    in_ch: int, out_ch: int, stride: int, kernel_size: int = 1, preact: bool = False
) -> nn.Sequential:
    """The shortcut projection: 1x1 conv + BN, or SENet-154's 3x3 stride-2 conv + BN (no BN when pre-activated)."""
    conv = conv3x3(in_ch, out_ch, stride) if kernel_size == 3 and stride != 1 else conv1x1(in_ch, out_ch, stride)
    return nn.Sequential(conv) if preact else nn.Sequential(conv, nn.BatchNorm2d(out_ch))


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class ResidualUnit(nn.Module):
    """Shared forward of :class:`BasicBlock` and :class:`Bottleneck`: where the attention module sits.

    Subclasses build the convolutions and implement :meth:`branch`, the residual function F (without the
    pre-activation of the unit's input, which this class applies).
    """

    expansion = 1
    #: ReLU on the residual branch right before a standard-position SE (timm's legacy SE-ResNet-18/34 units);
    #: set by :class:`~senet.models.resnet.ResNet` (``relu_before_attn``).
    relu_before_attn = False

    def __init__(self, *, preact: bool, se_position: str, downsample: nn.Module | None) -> None:
        super().__init__()
        if se_position not in SE_POSITIONS:
            raise ConfigError(f"unknown se_position {se_position!r}; choose one of {', '.join(SE_POSITIONS)}")
        self.preact = preact
        self.se_position = se_position
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.se: nn.Module | None = None

    @staticmethod
    def attn_channels(position: str, in_ch: int, mid_ch: int, out_ch: int) -> int:
        """Channels the attention module sees at ``position``: the unit's input, its 3x3 width, or its output."""
        return {"pre": in_ch, "after_3x3": mid_ch}.get(position, out_ch)

    def mid_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``se`` inside the branch when ``se_position == "after_3x3"``."""
        return self.se(x) if self.se is not None and self.se_position == "after_3x3" else x

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        se, pos = self.se, self.se_position
        branch_in = se(x) if se is not None and pos == "pre" else x
        if self.preact:
            branch_in = self.relu(self.bn1(branch_in))
            shortcut = x if self.downsample is None else self.downsample(branch_in)
        else:
            shortcut = x if self.downsample is None else self.downsample(x)
        out = self.branch(branch_in)
        if se is not None and pos == "identity":
            shortcut = se(shortcut)
        if pos == "standard":
            if self.relu_before_attn:
                out = self.relu(out)
            out = residual_tail(se, out, shortcut)
        else:
            out = out + shortcut
        if not self.preact:
            out = self.relu(out)
        if se is not None and pos == "post":
            out = se(out)
        return out


class BasicBlock(ResidualUnit):
    """Two 3x3 convs (ResNet-18/34, the CIFAR ResNets, WRN). ``groups``/``base_width`` other than 1/64 raise."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        halve_first_width: bool = False,
        preact: bool = False,
        attn_factory: AttnFactory | None = None,
        se_position: str = "standard",
    ) -> None:
        super().__init__(preact=preact, se_position=se_position, downsample=downsample)
        if groups != 1 or base_width != 64:
            raise ConfigError(
                f"basic blocks take groups=1 and base_width=64, got groups={groups}, base_width={base_width}"
            )
        if halve_first_width:
            raise ConfigError("halve_first_width applies to bottleneck units (SENet-154), not basic ones")
        # stride_in_1x1 concerns bottlenecks only: a basic unit's first conv is a 3x3 and takes the stride.
        self.bn1 = nn.BatchNorm2d(inplanes if preact else planes)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        if attn_factory is not None:
            self.se = attn_factory(self.attn_channels(se_position, inplanes, planes, planes))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:  # x is already BN1 + ReLU of the input
            out = self.mid_attention(self.relu(self.bn2(self.conv1(x))))
            return self.conv2(out)
        out = self.mid_attention(self.relu(self.bn1(self.conv1(x))))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualUnit):
    """1x1 reduce -> 3x3 (grouped for ResNeXt) -> 1x1 expand by 4.

    Args:
        stride_in_1x1: put the stride on the first 1x1 conv (the paper's ResNets and the official SE-ResNets,
            ResNet-50 = 3.86 GMACs) instead of on the 3x3 (torchvision/timm "v1.5", 4.09 GMACs).
        groups, base_width: ResNeXt cardinality and width per group; the 3x3 width is
            ``int(planes * base_width / 64) * groups``.
        halve_first_width: SENet-154's first 1x1 outputs half the 3x3 width.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        halve_first_width: bool = False,
        preact: bool = False,
        attn_factory: AttnFactory | None = None,
        se_position: str = "standard",
    ) -> None:
        super().__init__(preact=preact, se_position=se_position, downsample=downsample)
        width = int(planes * (base_width / 64.0)) * groups
        first = width // 2 if halve_first_width else width
        out_ch = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = nn.BatchNorm2d(inplanes if preact else first)
        self.conv1 = conv1x1(inplanes, first, s1)
        self.conv2 = conv3x3(first, width, s3, groups)
        self.bn2 = nn.BatchNorm2d(first if preact else width)
        self.conv3 = conv1x1(width, out_ch)
        self.bn3 = nn.BatchNorm2d(width if preact else out_ch)
        if attn_factory is not None:
            self.se = attn_factory(self.attn_channels(se_position, inplanes, width, out_ch))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:  # x is already BN1 + ReLU of the input
            out = self.conv2(self.relu(self.bn2(self.conv1(x))))
            out = self.mid_attention(self.relu(self.bn3(out)))
            return self.conv3(out)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.mid_attention(self.relu(self.bn2(self.conv2(out))))
        return self.bn3(self.conv3(out))
