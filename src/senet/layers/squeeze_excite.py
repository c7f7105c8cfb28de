"""The Squeeze-and-Excitation block (Hu et al., arXiv 1709.01507, section 3).

For a feature map U of shape (N, C, H, W) the block computes

* squeeze:    z = F_sq(U), a global pool over H x W          -> (N, C, 1, 1)
* excitation: s = sigma(W2 . delta(W1 . z)), W1: C -> C/r, W2: C/r -> C
* scale:      out = U * s, broadcast over H x W

W1 and W2 are stored as 1x1 convolutions (``fc1``, ``fc2``) so the same module also expresses the paper's
*NoSqueeze* ablation (Table 16), where the pooling is skipped and the two "FC" layers run at full resolution.
:meth:`SqueezeExcite.forward` is the reference: every faster way of computing the block (see
:mod:`senet.layers.se_fast`) is tested against it, and tracing (fx, export, ONNX) always sees it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from senet.errors import ConfigError

__all__ = ["GATES", "SQUEEZES", "AttentionBlock", "DescriptorFC", "SqueezeExcite", "at_least_float32", "check_channels", "make_gate",
           "squeeze"]

#: Excitation gates sigma studied in Table 12, plus the hard sigmoid used by later variants (eSE, MobileNetV3).
GATES: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "hard_sigmoid": nn.Hardsigmoid,
}
#: Squeeze operators F_sq studied in Table 11; "none" is the NoSqueeze ablation of Table 16.
SQUEEZES = ("avg", "max", "none")


class AttentionBlock(nn.Module):
    """Marker base class for every attention module in :mod:`senet.layers`.

    Analysis and complexity code find SE-style blocks by this type. Subclasses that produce a per-channel
    excitation expose it as the output of a submodule named ``gate``, so a forward hook reads it without surgery.
    ``channels`` is the number of input channels the block was built for.
    """

    channels: int


def make_gate(gate: str | Callable[[], nn.Module]) -> nn.Module:
    """Build the gate sigma from a name in :data:`GATES` or a zero-argument module factory."""
    if callable(gate) and not isinstance(gate, str):
        return gate()
    if gate not in GATES:
        raise ConfigError(f"unknown gate {gate!r}; choose one of {', '.join(GATES)}")
    return GATES[gate]()


def check_channels(block: AttentionBlock, x: torch.Tensor) -> None:
    """Raise a readable error when ``x`` is not an (N, C, H, W) map with the block's C."""
    check_map(x, block.channels, type(block).__name__)


@torch.fx.wrap
def check_map(x: torch.Tensor, channels: int, owner: str) -> None:
    """The check of :func:`check_channels` on plain values.

    Wrapped for ``torch.fx``: a traced graph keeps it as one call that runs on the real tensor, instead of failing
    on a branch over a symbolic shape; ``torch.export`` and ``torch.jit.trace`` see static shapes and run it as is.
    """
    if x.dim() != 4 or x.shape[1] != channels:
        raise ConfigError(f"{owner} expected an (N, {channels}, H, W) input, got shape {tuple(x.shape)}")


@torch.fx.wrap
def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in max(float32, t.dtype) precision: low-precision input is promoted, float64 stays float64.

    Wrapped for ``torch.fx`` (the choice reads the dtype, which a symbolic trace does not know)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def squeeze(x: torch.Tensor, how: str, training: bool = False) -> torch.Tensor:
    """F_sq: the global average (``"avg"``, the paper) or maximum (``"max"``, Table 11) over H x W, kept as
    (N, C, 1, 1); ``"none"`` (NoSqueeze, Table 16) returns U itself.

    In training the average is written as equation 2, z = (1 / HW) sum_ij u(i, j): the backward of a sum hands
    autograd a broadcast view of the small (N, C, 1, 1) gradient, where ``mean``'s backward writes a full-size
    tensor. In eval mode it is ``mean``, which exports to ONNX ReduceMean. Same value either way.
    """
    if how == "avg":
        if training:
            return x.sum((2, 3), keepdim=True) * (1.0 / (x.shape[2] * x.shape[3]))
        return x.mean((2, 3), keepdim=True)
    if how == "max":
        return x.amax((2, 3), keepdim=True)
    return x


def round_to_divisor(value: float, divisor: int) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, at least ``divisor``, and bumped up one multiple
    when rounding lost more than 10% (the channel rounding of timm's SE-ResNets and of MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class DescriptorFC(nn.Conv2d):
    """A fully connected layer on the squeezed descriptor z (N, C, 1, 1): the paper's W1 or W2, stored as a 1x1
    convolution (same parameters, shapes and state-dict keys as timm's and the release's) and run as the matrix
    product it is, which on a CPU costs a fraction of a convolution call on a 1x1 map.

    Only for squeezed input (the NoSqueeze ablation uses a real 1x1 convolution); there is no branch on the input,
    so fx, export and ONNX record the same product.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]


def excitation_fc(c_in: int, c_out: int, bias: bool, *, squeezed: bool) -> nn.Conv2d:
    """W1 or W2: a :class:`DescriptorFC` on a squeezed descriptor, a real 1x1 convolution for NoSqueeze."""
    return DescriptorFC(c_in, c_out, bias) if squeezed else nn.Conv2d(c_in, c_out, 1, bias=bias)


class SqueezeExcite(AttentionBlock):
    """Squeeze-and-Excitation block, arXiv 1709.01507.

    Args:
        channels: C, the channels of the feature map U.
        reduction: the reduction ratio r (paper default 16; the Keras notebook uses 2). The hidden width is
            ``C // r`` unless ``rd_channels`` is given.
        rd_channels: explicit hidden width C/r (overrides ``reduction``), as torchvision's ``squeeze_channels``.
        rd_divisor: round C/r to the nearest multiple of this (at least one multiple, never more than 10% below
            C/r), as timm's SE-ResNets do (C=64, r=16 gives 8, not 4); default 1 keeps ``C // r``.
        squeeze: F_sq - ``"avg"`` (global average pooling, the paper's choice), ``"max"`` (Table 11) or
            ``"none"`` (the NoSqueeze ablation of Table 16: W1, W2 become 1x1 convs applied at every position).
        gate: sigma - ``"sigmoid"`` (default), ``"tanh"``, ``"relu"`` (Table 12) or ``"hard_sigmoid"``; or a
            zero-argument callable returning a module.
        bias: biases on W1 and W2. The released models have them; the v4 ablations (section 6) removed them.
        act_layer: delta, the non-linearity between W1 and W2 (ReLU in the paper).

    Deviations and conventions: the gate sigma is applied in float32 (float64 for float64 input), also under
    autocast; s is then cast to U's dtype and the scale U * s runs in that dtype, so in float16/bfloat16 the
    output carries that format's rounding (an s near 0 or 1 may round to exactly 0 or 1). Submodules are
    ``fc1`` (W1), ``act`` (delta), ``fc2`` (W2) and ``gate`` (sigma): a forward hook on ``gate`` reads s.
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        *,
        rd_channels: int | None = None,
        rd_divisor: int = 1,
        squeeze: str = "avg",
        gate: str | Callable[[], nn.Module] = "sigmoid",
        bias: bool = True,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ConfigError(f"SqueezeExcite channels must be a positive integer, got {channels!r}")
        if rd_channels is None:
            if not isinstance(reduction, (int, float)) or isinstance(reduction, bool) or reduction < 1:
                raise ConfigError(f"reduction ratio r must be a number >= 1, got {reduction!r}")
            if reduction > channels:
                raise ConfigError(
                    f"reduction ratio r={reduction} is larger than channels C={channels}: C/r would be below 1"
                )
            rd_channels = max(1, int(channels // reduction))
            if not isinstance(rd_divisor, int) or rd_divisor < 1:
                raise ConfigError(f"rd_divisor must be a positive integer, got {rd_divisor!r}")
            if rd_divisor > 1:
                rd_channels = round_to_divisor(channels / reduction, rd_divisor)
        elif not isinstance(rd_channels, int) or rd_channels < 1:
            raise ConfigError(f"rd_channels must be a positive integer, got {rd_channels!r}")
        if squeeze not in SQUEEZES:
            raise ConfigError(f"unknown squeeze {squeeze!r}; choose one of {', '.join(SQUEEZES)}")
        self.channels = channels
        self.rd_channels = rd_channels
        self.squeeze = squeeze
        self.fc1 = excitation_fc(channels, rd_channels, bias, squeezed=squeeze != "none")
        self.act = act_layer(inplace=True) if act_layer is nn.ReLU else act_layer()
        self.fc2 = excitation_fc(rd_channels, channels, bias, squeezed=squeeze != "none")
        self.gate = make_gate(gate)

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """s = sigma(W2 . delta(W1 . F_sq(U))) in max(float32, U's dtype): (N, C, 1, 1), or (N, C, H, W) for
        NoSqueeze."""
        check_channels(self, x)
        z = squeeze(x, self.squeeze, self.training)
        return self.gate(at_least_float32(self.fc2(self.act(self.fc1(z)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The scale F_scale(U, s) = U * s, broadcast over H x W (equation 4)."""
        return x * self.excitation(x).to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rd_channels={self.rd_channels}, squeeze={self.squeeze!r}"
