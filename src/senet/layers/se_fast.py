"""The SE-ResNet tail ``shortcut + SE(U)`` (arXiv 1709.01507, Fig. 3), and the one faster way to run it.

:func:`residual_tail` is what a residual unit calls. It runs the reference, ``se(U) + shortcut``
(:meth:`SqueezeExcite.forward <senet.layers.squeeze_excite.SqueezeExcite.forward>`), unless every rule below holds;
then it runs the fused Triton tail of :mod:`senet.layers.se_triton`, which computes the same values (to float
rounding) with fewer passes over the full-size maps on a GPU:

1. the user switched it on for this process: :func:`senet.layers.se_triton.enable` (the benchmark scripts call
   :func:`~senet.layers.se_triton.enable_from_environment`, which reads ``SENET_SE_KERNEL=triton``); nothing
   reads the environment on import;
2. the block is a stock :class:`~senet.layers.squeeze_excite.SqueezeExcite`: average squeeze, ``fc1``/``fc2``
   :class:`~senet.layers.squeeze_excite.DescriptorFC`, ReLU, sigmoid (:func:`is_stock_se`, from the module types alone);
3. the tensors suit the kernels (:func:`senet.layers.se_triton.applies`: CUDA, float32/bfloat16/float16, both
   NCHW or both channels_last);
4. the call is eager: not a ``torch.fx`` trace, ``torch.jit`` trace or script, ``torch.compile`` or
   ``torch.export`` - tracing always records the reference.

While the fused tail runs, the SE block and its submodules are not called as modules, so their hooks do not fire:
switch it off (``se_triton.enable(False)``) while recording excitations or counting complexity with hooks.
"""

from __future__ import annotations

import torch
from torch import nn

from senet.layers import se_triton
from senet.layers.squeeze_excite import DescriptorFC, SqueezeExcite, check_channels

__all__ = ["is_stock_se", "residual_tail"]


def is_stock_se(se: nn.Module) -> bool:
    """True for a :class:`SqueezeExcite` with average squeeze, stock W1/W2, ReLU delta and sigmoid gate - the
    block the fused kernels implement."""
    return (type(se) is SqueezeExcite and se.squeeze == "avg" and type(se.fc1) is DescriptorFC
            and type(se.fc2) is DescriptorFC and type(se.act) is nn.ReLU and type(se.gate) is nn.Sigmoid)


def residual_tail(se: nn.Module | None, u: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``se(U) + shortcut`` (``U + shortcut`` without a block), by the rules in the module docstring."""
    if se is None:
        return u + shortcut
    if se_triton.applies(u, shortcut) and not torch.jit.is_scripting() and is_stock_se(se):
        check_channels(se, u)
        return se_triton.FusedScaleAdd.apply(u, shortcut, se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias)
    return se(u) + shortcut
