"""Channel- and spatial-attention modules that later work built beside SE (sSE, scSE, ECA, eSE,
Gather-Excite).

Each is an :class:`~senet.layers.squeeze_excite.AttentionBlock` whose gate is a submodule named ``gate``. As in
SqueezeExcite, the gate runs in max(float32, input dtype) precision and the scale in the input's dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from senet.errors import ConfigError
from senet.layers.squeeze_excite import AttentionBlock, SqueezeExcite, at_least_float32, check_channels, make_gate

torch.fx.wrap("at_least_float32")  # its dtype choice is opaque to a symbolic trace (see squeeze_excite)

__all__ = ["ECA", "ChannelSpatialSE", "EffectiveSE", "GatherExcite", "SpatialSE"]


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


class SpatialSE(AttentionBlock):
    """sSE - spatial squeeze, channel excitation (Roy, Navab, Wachinger, MICCAI 2018, arXiv 1803.02579).

    A 1x1 conv C -> 1 followed by a sigmoid gives one weight q(i, j) per position; out = U * q.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        _check_positive("channels", channels)
        self.channels = channels
        self.conv = nn.Conv2d(channels, 1, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_channels(self, x)
        return x * self.gate(at_least_float32(self.conv(x))).to(x.dtype)


class ChannelSpatialSE(AttentionBlock):
    """scSE - concurrent channel (cSE = :class:`SqueezeExcite`) and spatial (sSE) excitation (arXiv 1803.02579).

    ``combine`` merges the two recalibrated maps: ``"add"`` (the paper's choice), ``"max"`` or ``"mul"``.
    The channel excitation is read at ``cse.gate``, the spatial one at ``sse.gate``.
    """

    COMBINES = ("add", "max", "mul")
    #: Where ``**se_kwargs`` go; :func:`senet.layers.factory.check_option_names` checks option names against it.
    forwards_options_to = SqueezeExcite

    def __init__(self, channels: int, reduction: float = 16, *, combine: str = "add", **se_kwargs) -> None:
        super().__init__()
        if combine not in self.COMBINES:
            raise ConfigError(f"unknown combine {combine!r}; choose one of {', '.join(self.COMBINES)}")
        self.channels = channels
        self.combine = combine
        self.cse = SqueezeExcite(channels, reduction, **se_kwargs)
        self.sse = SpatialSE(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.cse(x), self.sse(x)
        if self.combine == "add":
            return c + s
        if self.combine == "max":
            return torch.maximum(c, s)
        return c * s


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """ECA's adaptive kernel size k = |log2(C) / gamma + beta / gamma|, rounded to the nearest odd >= 1."""
    t = int(abs(math.log2(channels) / gamma + beta / gamma))
    return t if t % 2 else t + 1


class ECA(AttentionBlock):
    """Efficient Channel Attention (Wang et al., CVPR 2020, arXiv 1910.03151).

    Squeeze by global average pooling, then a 1D convolution of kernel k across the channel axis (no reduction,
    no bias), then a sigmoid. ``kernel_size=None`` picks k from C with ``gamma`` and ``beta``.
    """

    def __init__(self, channels: int, kernel_size: int | None = None, *, gamma: float = 2.0, beta: float = 1.0):
        super().__init__()
        _check_positive("channels", channels)
        k = eca_kernel_size(channels, gamma, beta) if kernel_size is None else kernel_size
        _check_positive("kernel_size", k)
        if k % 2 == 0:
            raise ConfigError(f"ECA kernel_size must be odd so channels stay aligned, got {k}")
        self.channels = channels
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_channels(self, x)
        n, c = x.shape[:2]
        y = self.conv(x.mean((2, 3)).view(n, 1, c)).view(n, c, 1, 1)
        return x * self.gate(at_least_float32(y)).to(x.dtype)


class EffectiveSE(AttentionBlock):
    """Effective SE (eSE, Lee & Park, CenterMask / VoVNetV2, arXiv 1911.06667).

    One C -> C fully connected layer (a 1x1 conv with bias) instead of SE's two, so no channel information is lost
    to the reduction, followed by a hard sigmoid.
    """

    def __init__(self, channels: int, *, gate: str = "hard_sigmoid") -> None:
        super().__init__()
        _check_positive("channels", channels)
        self.channels = channels
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = make_gate(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_channels(self, x)
        return x * self.gate(at_least_float32(self.fc(x.mean((2, 3), keepdim=True)))).to(x.dtype)


class GatherExcite(AttentionBlock):
    """Parameter-free Gather-Excite, GE-theta-minus (Hu, Shen, Albanie, Sun, Vedaldi, NeurIPS 2018, arXiv 1810.12348).

    Gather: average pooling over an extent; ``extent=None`` is the global extent (one value per channel, the
    paper's best GE-theta-minus), an integer e pools e x e windows with stride e. Excite: nearest-neighbour
    upsampling back to H x W, then a sigmoid; out = U * sigmoid(gathered). It has no parameters.
    """

    def __init__(self, channels: int, extent: int | None = None) -> None:
        super().__init__()
        _check_positive("channels", channels)
        if extent is not None:
            _check_positive("extent", extent)
        self.channels = channels
        self.extent = extent
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_channels(self, x)
        if self.extent is None:
            g = x.mean((2, 3), keepdim=True)
        else:
            g = F.avg_pool2d(x, self.extent, self.extent, ceil_mode=True, count_include_pad=False)
            g = F.interpolate(g, size=x.shape[-2:], mode="nearest")
        return x * self.gate(at_least_float32(g)).to(x.dtype)
