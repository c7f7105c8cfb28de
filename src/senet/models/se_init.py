"""Start SE blocks as the identity, so that adding them to a trained network leaves its function unchanged.

An SE block (arXiv 1709.01507, eq. 2-4) scales a feature map U channel-wise: ``x~_c = s_c * u_c`` with
``s = sigma(W2 delta(W1 z) + b2)`` and ``z = F_sq(U)``. A randomly initialised block has s near 0.5 with a spread
across channels and inputs, so each residual branch is halved and distorted: the trained function is lost.

Since sigma maps into (0, 1), s = 1 can only be approached (a large b2 saturates the sigmoid, and then its gradient
``s (1 - s)`` vanishes, so the block hardly learns). Instead:

* ``W2 = 0`` and ``b2 = 0`` make s = sigma(0) = s0 for every channel and input (0.5 for the sigmoid and the hard
  sigmoid) - the gate sits at its most sensitive point, where ``s (1 - s)`` is largest;
* the layer that produces U is scaled by ``1 / s0``. U is the output of an affine layer (a BatchNorm's gamma and
  beta, or a convolution's weight and bias) followed at most by ReLUs, which are positively homogeneous, so
  scaling that layer's weight and bias by ``c > 0`` scales U by ``c``, in training and evaluation mode alike.

Then ``x~ = s0 * (U / s0) = U`` exactly: the network computes what it computed before the SE blocks were added,
while W1 is random and W2 receives a gradient from the first step on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
from torch import nn

from senet.errors import ConfigError

__all__ = ["init_se_identity_", "se_input_layers"]


def _unit_feeder(unit: nn.Module) -> nn.Module | None:
    """The affine layer whose output a residual unit's standard-position SE scales: the branch's last BN (post-
    activation units) or last convolution (pre-activation units, whose branch ends in a conv)."""
    if getattr(unit, "se_position", "standard") != "standard":
        return None
    if getattr(unit, "preact", False):
        return unit.conv3 if hasattr(unit, "conv3") else unit.conv2
    return unit.bn3 if hasattr(unit, "bn3") else getattr(unit, "bn2", None)


def se_input_layers(model: nn.Module) -> dict[nn.Module, nn.Module]:
    """``{SE block: the affine layer producing its input}`` for every SE block of ``model`` this module can place:
    the standard SE of a residual unit (ours, or a torchvision unit after ``add_se``), and an SE after the ReLU of a
    VGG-style ``Sequential`` (``add_se``'s :class:`~senet.models.retrofit.ActivationThenAttention`)."""
    from senet.models.retrofit import ActivationThenAttention

    found: dict[nn.Module, nn.Module] = {}
    for module in model.modules():
        se = getattr(module, "se", None)
        if se is None or isinstance(module, ActivationThenAttention):
            continue
        feeder = _unit_feeder(module)
        if feeder is not None:
            found[se] = feeder
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            layers = list(module)
            for before, layer in itertools.pairwise(layers):
                if isinstance(layer, ActivationThenAttention) and layer.se is not None:
                    found[layer.se] = before
    return found


def init_se_identity_(model: nn.Module, blocks: Iterable[nn.Module] | None = None) -> int:
    """Make the SE blocks ``blocks`` of ``model`` (default: all) compute the identity, in place (see the module
    docstring); returns how many were set. Raises :class:`ConfigError` for a block that cannot be made the identity
    (not a :class:`~senet.layers.SqueezeExcite`, a gate with sigma(0) <= 0, or no affine layer before it)."""
    from senet.layers import SqueezeExcite

    feeders = se_input_layers(model)
    chosen = list(feeders) if blocks is None else list(blocks)
    plans = []
    for se in chosen:
        if not isinstance(se, SqueezeExcite):
            raise ConfigError(f"identity init applies to SqueezeExcite blocks, not {type(se).__name__}")
        feeder = feeders.get(se)
        if feeder is None or getattr(feeder, "weight", None) is None:
            raise ConfigError("identity init needs an affine layer (BatchNorm with affine=True or a convolution) "
                              "right before each SE block; this model places SE elsewhere")
        with torch.no_grad():
            s0 = float(se.gate(torch.zeros(1)))
        if not s0 > 0:
            raise ConfigError(f"identity init needs a gate with sigma(0) > 0 (sigmoid, hard_sigmoid); "
                              f"{type(se.gate).__name__} gives {s0}")
        plans.append((se, feeder, 1.0 / s0))
    with torch.no_grad():
        for se, feeder, scale in plans:
            se.fc2.weight.zero_()
            if se.fc2.bias is not None:
                se.fc2.bias.zero_()
            feeder.weight.mul_(scale)
            if getattr(feeder, "bias", None) is not None:
                feeder.bias.mul_(scale)
    return len(plans)
