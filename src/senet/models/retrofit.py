"""``add_se``: put SE blocks into a model you already have (arXiv 1709.01507, section 4: "SE blocks can be
integrated into standard architectures").

Supported, edited in place:

* torchvision ResNet / ResNeXt / Wide ResNet (``BasicBlock``, ``Bottleneck``): SE on the residual branch after the
  last BN (``bn2`` / ``bn3``), before the addition - the SE-ResNet module of Fig. 3. Each unit's class is swapped
  for an SE-aware subclass, so every existing parameter keeps its name (pretrained weights still load) and the
  SE sits at ``layerI.J.se``, which :func:`senet.models.naming.named_se_blocks` names ``SE_<I+1>_<J+1>``.
* torchvision VGG: SE after the ReLU that follows each convolution (the paper's SE-VGG-16). The ReLU at
  ``features.K`` becomes a :class:`ActivationThenAttention` holding it as ``act`` and the SE as ``se``, so no
  existing parameter is renamed.
* ``senet`` ResNets built without attention (``create_model("resnet50")``): SE at the standard position; the
  model's saved config is updated so a checkpoint rebuilds the SE model.

Anything else raises :class:`~senet.errors.ConfigError` naming what is supported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import AttnFactory, make_attn_factory
from senet.layers.se_fast import residual_tail
from senet.models.blocks import ResidualUnit
from senet.models.resnet import check_se_stages

__all__ = ["ActivationThenAttention", "add_se"]

_SUPPORTED = (
    "torchvision ResNet/ResNeXt/Wide ResNet (BasicBlock, Bottleneck), torchvision VGG, "
    "and senet ResNets built without attention"
)


class ActivationThenAttention(nn.Module):
    """``se(act(x))``: the non-linearity after a conv followed by its SE block (``se`` may be set to None)."""

    def __init__(self, act: nn.Module, se: nn.Module | None) -> None:
        super().__init__()
        self.act = act
        self.se = se

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        return x if self.se is None else self.se(x)


def _tv_block_classes() -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    from torchvision.models import VGG
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return BasicBlock, Bottleneck, VGG


def _se_basic_forward(self, x: torch.Tensor) -> torch.Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    shortcut = x if self.downsample is None else self.downsample(x)
    return self.relu(residual_tail(self.se, out, shortcut))


def _se_bottleneck_forward(self, x: torch.Tensor) -> torch.Tensor:
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    shortcut = x if self.downsample is None else self.downsample(x)
    return self.relu(residual_tail(self.se, out, shortcut))


_SE_CLASSES: dict[type[nn.Module], type[nn.Module]] = {}


def _se_class(base: type[nn.Module]) -> type[nn.Module]:
    """The SE-aware subclass of a torchvision unit class (created once, at module level so models pickle)."""
    if base not in _SE_CLASSES:
        forward = _se_bottleneck_forward if base.__name__ == "Bottleneck" else _se_basic_forward
        name = f"SE{base.__name__}"
        cls = type(name, (base,), {"forward": forward, "__module__": __name__, "__qualname__": name,
                                   "__doc__": f"torchvision {base.__name__} with SE before the addition."})
        _SE_CLASSES[base] = cls
    return _SE_CLASSES[base]


def __getattr__(name: str) -> type[nn.Module]:
    # SEBasicBlock / SEBottleneck exist on demand (torchvision is imported lazily); pickle finds them here.
    if name in ("SEBasicBlock", "SEBottleneck"):
        basic, bottleneck, _ = _tv_block_classes()
        return _se_class(basic if name == "SEBasicBlock" else bottleneck)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stage_of(path: str) -> int | None:
    """The paper's stage number of a unit at ``layerI.J`` (I + 1), None elsewhere."""
    head = path.split(".")[0]
    return int(head[5:]) + 1 if head.startswith("layer") and head[5:].isdigit() else None


def _place(module: nn.Module, reference: nn.Module) -> nn.Module:
    p = next(reference.parameters(), None)
    return module if p is None else module.to(device=p.device, dtype=p.dtype)


def _retrofit_units(units: list[tuple[str, nn.Module]], factory: AttnFactory, stages: set[int] | None) -> int:
    # Build every SE block first: one refused by the layer (say r > C) then leaves the model untouched.
    planned = []
    for path, unit in units:
        if stages is not None and _stage_of(path) not in stages:
            continue
        # The residual branch ends in its last conv; in a pre-activation bottleneck bn3 sits *before* conv3
        # (width channels), so the unit's output width must come from the conv, not from a BN.
        last_conv = unit.conv3 if hasattr(unit, "conv3") else unit.conv2
        planned.append((unit, _place(factory(last_conv.out_channels), unit)))
    for unit, se in planned:
        if isinstance(unit, ResidualUnit):
            unit.se = se
        else:
            unit.__class__ = _se_class(type(unit))
            unit.se = se
    return len(planned)


def _retrofit_vgg(features: nn.Sequential, factory: AttnFactory) -> int:
    channels, planned = None, []
    for i, layer in enumerate(list(features)):
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
        elif isinstance(layer, (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.LeakyReLU)) and channels is not None:
            planned.append((i, _place(factory(channels), features[i - 1])))  # all built before any is attached
            channels = None
    for i, se in planned:
        features[i] = ActivationThenAttention(features[i], se)
    return len(planned)


def add_se(
    model: nn.Module,
    *,
    attn_layer: str | Callable[..., nn.Module] = "se",
    reduction: float | None = None,
    squeeze: str | None = None,
    gate: str | Callable[[], nn.Module] | None = None,
    se_bias: bool | None = None,
    se_stages: Sequence[int] | None = None,
    init: str = "random",
    **attn_kwargs: Any,
) -> nn.Module:
    """Insert SE blocks into ``model`` in place and return it (see the module docstring for what is supported).

    Args:
        attn_layer: ``"se"`` (default) or another attention name / callable from :mod:`senet.layers`.
        reduction, squeeze, gate, se_bias: SqueezeExcite's r (16 by default), F_sq, sigma and FC biases; only
            the ones given are passed on. Other keyword arguments go to the attention layer as well.
        se_stages: for ResNets, which of the paper's stages 2..5 get SE (Table 13); default all.
        init: ``"random"`` (the layer's own initialisation: gates near 0.5, so a trained network's function
            changes) or ``"identity"``: W2 = 0, b2 = 0 and the layer feeding each SE scaled by 1 / sigma(0), so
            the network computes exactly what it did before (:func:`senet.models.se_init.init_se_identity_`) -
            the choice for adding SE to pretrained weights.
    """
    if init not in ("random", "identity"):
        raise ConfigError(f"unknown init {init!r}; choose random or identity")
    factory = make_attn_factory(attn_layer, reduction=reduction, squeeze=squeeze, gate=gate, se_bias=se_bias,
                                attn_kwargs=attn_kwargs)
    if factory is None:
        raise ConfigError("add_se needs an attention layer; attn_layer=None would add nothing")
    tv_basic, tv_bottleneck, tv_vgg = _tv_block_classes()
    if any(type(m) in _SE_CLASSES.values() or isinstance(m, ActivationThenAttention) for m in model.modules()):
        raise ConfigError("this model already has SE blocks from add_se; add them once")
    ours = [(p, m) for p, m in model.named_modules() if isinstance(m, ResidualUnit)]
    tv_units = [(p, m) for p, m in model.named_modules() if type(m) in (tv_basic, tv_bottleneck)]
    units = ours or tv_units
    stages = None
    if se_stages is not None:
        if not units:
            raise ConfigError("se_stages applies to ResNets only; add_se puts SE after every conv of a VGG")
        last_stage = max((_stage_of(p) or 2) for p, _ in units)
        stages = check_se_stages(se_stages, last_stage - 1, True)
    if ours:
        if any(u.se is not None for _, u in ours):
            raise ConfigError("this model already has attention blocks (unit.se is set); build the plain model instead")
        if any(u.se_position != "standard" for _, u in ours):
            raise ConfigError("add_se adds SE at the standard position; build the model with se_position instead")
        added = _retrofit_units(ours, factory, stages)
        _update_config(model, attn_layer, {"reduction": reduction, "squeeze": squeeze, "gate": gate, "se_bias": se_bias,
                                               "se_stages": se_stages}, attn_kwargs)
    elif tv_units:
        added = _retrofit_units(tv_units, factory, stages)
    elif isinstance(model, tv_vgg):
        added = _retrofit_vgg(model.features, factory)
    else:
        raise ConfigError(f"add_se does not support {type(model).__name__}; it supports {_SUPPORTED}")
    if added == 0:
        raise ConfigError(f"add_se found no place for SE in {type(model).__name__} (se_stages={se_stages!r})")
    if init == "identity":
        from senet.models.se_init import init_se_identity_

        init_se_identity_(model)  # add_se refuses models that had SE blocks, so these are all new
    return model


def _update_config(model: nn.Module, attn_layer: Any, options: dict[str, Any], attn_kwargs: dict[str, Any]) -> None:
    """Keep ``model.senet_config`` true to the model, so saving and reloading rebuilds the SE version."""
    config = getattr(model, "senet_config", None)
    if not config:
        return
    if not isinstance(attn_layer, str):
        model.senet_config = None  # a callable cannot be saved in a JSON config
        return
    kwargs = dict(config.get("kwargs", {}), attn_layer=attn_layer)
    kwargs.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items() if v is not None})
    if attn_kwargs:
        kwargs["attn_kwargs"] = dict(attn_kwargs)
    model.senet_config = {"name": config["name"], "kwargs": kwargs}
