"""The Squeeze-and-Excitation block (Hu et al., arXiv 1709.01507, section 3).

For a feature map U of shape (N, C, H, W) the block computes

* squeeze:    z = F_sq(U), a global pool over H x W          -> (N, C, 1, 1)
* excitation: s = sigma(W2 . delta(W1 . z)), W1: C -> C/r, W2: C/r -> C
* scale:      out = U * s, broadcast over H x W

W1 and W2 are stored as 1x1 convolutions (``fc1``, ``fc2``) so the same module also expresses the paper's
*NoSqueeze* ablation (Table 16), where the pooling is skipped and the two "FC" layers run at full resolution.
On a squeezed (N, C, 1, 1) descriptor they run as a matrix product (:class:`PointwiseConv2d`), which on a CPU
is an order of magnitude cheaper than a convolution call of the same size (``benchmarks/bench_se.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from senet.errors import ConfigError
from senet.layers import se_triton

__all__ = ["GATES", "SQUEEZES", "AttentionBlock", "PointwiseConv2d", "SqueezeExcite", "check_channels", "has_hooks",
           "make_gate"]

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
    if x.dim() != 4 or x.shape[1] != block.channels:
        raise ConfigError(
            f"{type(block).__name__} expected an (N, {block.channels}, H, W) input, "
            f"got shape {tuple(x.shape)}"
        )


def round_to_divisor(value: float, divisor: int) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, at least ``divisor``, and bumped up one multiple
    when rounding lost more than 10% (the channel rounding of timm's SE-ResNets and of MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class PointwiseConv2d(nn.Conv2d):
    """A 1x1 :class:`~torch.nn.Conv2d` (same parameters, state-dict keys and hooks) that runs as ``F.linear``
    when the input has a single spatial position - the squeezed descriptor z of an SE block.

    Both paths compute the same sum over input channels; on a CPU the convolution call on an (N, C, 1, 1) input
    costs about ten times the matrix product (measured at N=32, C=256 by ``benchmarks/bench_se.py --fc``).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def linear(self, z: torch.Tensor) -> torch.Tensor:
        """The layer on an (N, C_in) descriptor: (N, C_out), as one matrix product."""
        return F.linear(z, self.weight.flatten(1), self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[2] == 1 and x.shape[3] == 1:
            return self.linear(x.flatten(1))[:, :, None, None]
        return super().forward(x)


#: torch's registries of global module hooks (dicts filled in place by ``register_module_forward_hook`` & co.).
_GLOBAL_HOOKS = tuple(
    getattr(nn.modules.module, name) for name in ("_global_forward_hooks", "_global_forward_pre_hooks",
                                                   "_global_backward_hooks", "_global_backward_pre_hooks")
    if isinstance(getattr(nn.modules.module, name, None), dict)
)


def has_hooks(module: nn.Module) -> bool:
    """True when hooks would see ``module``'s call: its own forward/backward hooks, or global module hooks.

    Fast paths that compute a module's result without calling it (the fused SE-ResNet tail, the functional
    excitation) run only when this is False, so a hook never misses a call.
    """
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks) or any(_GLOBAL_HOOKS)


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in max(float32, t.dtype) precision: low-precision input is promoted, float64 stays float64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _is_exporting() -> bool:
    """True while ``torch.export`` / the dynamo ONNX exporter traces the model (False on torch without the API)."""
    return bool(getattr(torch.compiler, "is_exporting", lambda: False)())


def _broadcast_add_is_slow(x: torch.Tensor) -> bool:
    """True for a reduced-precision channels_last CPU map: there PyTorch's CPU kernel for ``grad.add_(small.expand(
    ...))`` - how autograd accumulates the squeeze's gradient into dL/dU - is ~7x slower than materialising the
    broadcast first and adding two dense tensors (bfloat16, (256, 16, 28, 28): 4.7 vs 0.6 ms on 2 threads; fp32 and
    contiguous maps are fast as they are)."""
    return (x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16) and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))


class _MeanWithDenseGrad(torch.autograd.Function):
    """``x.sum((2, 3), keepdim=True) * (1 / HW)`` whose backward hands autograd a dense channels_last gradient
    instead of a broadcast view. Same forward values, and the same gradient values bit for bit (a broadcast copy
    holds the same numbers as the view); only the memory layout of the gradient differs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        ctx.scale = 1.0 / (x.shape[2] * x.shape[3])
        return x.sum((2, 3), keepdim=True) * ctx.scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return (grad * ctx.scale).expand(ctx.shape).contiguous(memory_format=torch.channels_last)


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
        self.fc1 = PointwiseConv2d(channels, rd_channels, bias=bias)
        self.act = act_layer(inplace=True) if act_layer is nn.ReLU else act_layer()
        self.fc2 = PointwiseConv2d(rd_channels, channels, bias=bias)
        self.gate = make_gate(gate)

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        if self.squeeze == "avg":
            if x.requires_grad and not _is_exporting():
                # Same value; the backward of a sum is a broadcast view of the small (N, C, 1, 1) gradient,
                # while mean's backward writes a full-size tensor: ~20-30% off the SE's forward+backward.
                if _broadcast_add_is_slow(x) and not torch.compiler.is_compiling():
                    return _MeanWithDenseGrad.apply(x)
                return x.sum((2, 3), keepdim=True) * (1.0 / (x.shape[2] * x.shape[3]))
            # A plain mean (not adaptive pooling): exports to ONNX ReduceMean and keeps channels_last.
            return x.mean((2, 3), keepdim=True)
        if self.squeeze == "max":
            return x.amax((2, 3), keepdim=True)
        return x

    def _is_plain(self) -> bool:
        """True when fc1, act, fc2 and gate are the stock modules (PointwiseConv2d, ReLU, PointwiseConv2d, Sigmoid)
        and no hook watches them: then :meth:`excitation` may run them as functions."""
        mods = self._modules  # one dict read instead of four nn.Module.__getattr__ calls: this runs every forward
        fc1, act, fc2, gate = mods["fc1"], mods["act"], mods["fc2"], mods["gate"]
        return (type(fc1) is PointwiseConv2d and type(fc2) is PointwiseConv2d and type(act) is nn.ReLU
                and type(gate) is nn.Sigmoid and self.squeeze != "none"
                and not (has_hooks(fc1) or has_hooks(act) or has_hooks(fc2) or has_hooks(gate)))

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """Return s = sigma(W2 . delta(W1 . F_sq(U))) in max(float32, U's dtype), shape (N, C, 1, 1)
        ((N, C, H, W) for NoSqueeze)."""
        check_channels(self, x)
        if self._is_plain():
            # The same operations as the module calls below without four nn.Module calls: ~6 us less Python per
            # SE call in inference and ~40 us per forward+backward on the 2-core VM (not measured on a GPU).
            z = self._squeeze(x).flatten(1)
            s = self.fc2.linear(F.relu(self.fc1.linear(z), inplace=self.act.inplace))
            return torch.sigmoid(at_least_float32(s))[:, :, None, None]
        s = self.fc2(self.act(self.fc1(self._squeeze(x))))
        return self.gate(at_least_float32(s))

    def scale(self, x: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
        """``U * s``, or ``shortcut + U * s`` in one ``addcmul`` (the SE-ResNet tail, the release's "Axpy").

        With ``SENET_SE_KERNEL=triton`` (:mod:`senet.layers.se_triton`), the tail of a stock, unhooked block on a
        CUDA map runs as fused Triton kernels instead (float32 excitation; same values to float rounding).
        """
        if shortcut is not None and self.squeeze == "avg" and se_triton.applies(x, shortcut) and self._is_plain():
            check_channels(self, x)
            return se_triton.FusedScaleAdd.apply(x, shortcut, self.fc1.weight, self.fc1.bias, self.fc2.weight,
                                                 self.fc2.bias)
        s = self.excitation(x).to(x.dtype)
        return x * s if shortcut is None else torch.addcmul(shortcut, x, s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rd_channels={self.rd_channels}, squeeze={self.squeeze!r}"
