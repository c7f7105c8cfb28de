"""Weight layouts of the peers we convert from (timm and the Caffe port), and how each maps onto
:mod:`senet.models.resnet`.

A :class:`SourceLayout` knows three things about a family of checkpoints:

* how its keys become ours (:meth:`SourceLayout.map_keys`);
* which model-builder options reproduce its architecture exactly - stride placement, stem pooling, the SE
  hidden width C/r - for each of our model names (:meth:`SourceLayout.model_kwargs`);
* its own model names, accepted as aliases of ours (:attr:`SourceLayout.aliases`).

Layouts:

``timm`` - ``timm.models.resnet`` (``seresnet18/34/50/101/152``, ``seresnext50_32x4d``, ``seresnext101_32x4d``,
``senet154`` and the plain ``resnet*``/``resnext*``). Keys already follow torchvision (``conv1``, ``bn1``,
``layer1.0.se.fc1``, ``downsample.0``, ``fc``). The stride of a downsampling bottleneck sits on the 3x3
("ResNet v1.5"), the stem max-pool pads by 1, and the SE hidden width is C/16 rounded to a multiple of 8 (so a
64-channel SE has 8 hidden units, not 4). timm's deep stem (``conv1.0``, ``conv1.1``, ``conv1.3``, ``conv1.4``,
``conv1.6``, ``bn1``) becomes our ``conv1, bn1, conv2, bn2, conv3, bn3``.

``torchvision`` - torchvision's ResNets/ResNeXts (and timm's plain ``resnet*``, which share their keys and their
architecture: stride on the 3x3, padded stem max-pool). Keys need no renaming; converted like ``timm``.

``caffe-port`` - the port of the official Caffe release used by ``pretrainedmodels`` (``se_resnet50``, ...,
``senet154``) and by timm's ``legacy_se*`` models: the stem is ``layer0.*``, the SE block ``se_module``, the
classifier ``last_linear``. SE-ResNet bottlenecks put the stride on the first 1x1 (the paper's placement), while
the SE-ResNeXt and SENet-154 bottlenecks put it on the 3x3; the stem max-pool has no padding and uses ceil mode;
the SE hidden width is C // 16. timm's ``legacy_seresnet18/34`` (the Caffe release has no SE-ResNet-18/34) apply
a ReLU to the residual branch before the SE (``relu_before_attn=True``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["LAYOUTS", "STAGE_DEPTHS", "SourceLayout", "check_layout", "detect_layout", "get_layout", "stage_depths"]

StateDict = dict[str, torch.Tensor]

# timm's deep stem is one Sequential: conv, BN, act, conv, BN, act, conv; the last BN is the model's bn1.
_TIMM_DEEP_STEM = {"conv1.0.": "conv1.", "conv1.1.": "bn1.", "conv1.3.": "conv2.", "conv1.4.": "bn2.",
                   "conv1.6.": "conv3.", "bn1.": "bn3."}


def _timm_keys(state: StateDict) -> StateDict:
    if "conv1.0.weight" not in state:
        return dict(state)
    out = {}
    for key, value in state.items():
        for old, new in _TIMM_DEEP_STEM.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


_CAFFE_RULES = (
    (re.compile(r"^layer0\."), ""),  # layer0.conv1 -> conv1, layer0.bn1 -> bn1 (and conv2/bn2/conv3/bn3)
    (re.compile(r"\.se_module\."), ".se."),
    (re.compile(r"^last_linear\."), "fc."),
)


def _caffe_keys(state: StateDict) -> StateDict:
    out = {}
    for key, value in state.items():
        for pattern, repl in _CAFFE_RULES:
            key = pattern.sub(repl, key)
        out[key] = value
    return out


def _timm_kwargs(model: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"stride_in_1x1": False, "stem_pool": "pad"}
    if model.startswith("se"):
        kwargs["attn_kwargs"] = {"rd_divisor": 8}
    return kwargs


def _caffe_kwargs(model: str) -> dict[str, Any]:
    # SEResNetBottleneck strides its first 1x1; SEResNeXtBottleneck and SENet-154's SEBottleneck stride the 3x3.
    kwargs: dict[str, Any] = {"stride_in_1x1": model.startswith("se_resnet"), "stem_pool": "ceil"}
    if model in ("se_resnet18", "se_resnet34"):
        kwargs["relu_before_attn"] = True  # timm's SEResNetBlock applies a ReLU after bn2, before the SE
    return kwargs


@dataclass(frozen=True)
class SourceLayout:
    """One peer's checkpoint layout (see the module docstring)."""

    name: str
    description: str
    map_keys: Callable[[StateDict], StateDict]
    model_kwargs: Callable[[str], dict[str, Any]]
    #: The peer's model names -> ours.
    aliases: dict[str, str] = field(default_factory=dict)
    #: Our model names this layout can fill (in the order tried when the model is inferred).
    targets: tuple[str, ...] = ()

    def our_name(self, name: str) -> str | None:
        """Our model name for a peer name or one of ours; None when this layout cannot fill it."""
        name = self.aliases.get(name, name)
        return name if name in self.targets else None


_SE_TARGETS = ("se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152",
               "se_resnext50_32x4d", "se_resnext101_32x4d", "senet154")
_PLAIN_TARGETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                  "resnext101_32x4d")

#: Units per residual stage of each target, to skip candidates that cannot fit before building any.
STAGE_DEPTHS: dict[str, tuple[int, ...]] = {
    **{f"{p}resnet18": (2, 2, 2, 2) for p in ("", "se_")},
    **{f"{p}resnet34": (3, 4, 6, 3) for p in ("", "se_")},
    **{f"{p}{n}50{s}": (3, 4, 6, 3) for p in ("", "se_") for n, s in (("resnet", ""), ("resnext", "_32x4d"))},
    **{f"{p}{n}101{s}": (3, 4, 23, 3) for p in ("", "se_") for n, s in (("resnet", ""), ("resnext", "_32x4d"))},
    **{f"{p}resnet152": (3, 8, 36, 3) for p in ("", "se_")},
    "senet154": (3, 8, 36, 3),
}


def stage_depths(state: StateDict) -> tuple[int, ...]:
    """Units per stage read off keys such as ``layer3.22.conv1.weight`` (stages 1, 2, ... in order)."""
    depth: dict[int, int] = {}
    for key in state:
        match = re.match(r"layer(\d+)\.(\d+)\.", key)
        if match:
            stage, unit = int(match.group(1)), int(match.group(2))
            depth[stage] = max(depth.get(stage, 0), unit + 1)
    return tuple(depth[s] for s in sorted(depth))


LAYOUTS: dict[str, SourceLayout] = {
    "timm": SourceLayout(
        name="timm",
        description="timm.models.resnet: seresnet*, seresnext*_32x4d, senet154, resnet*, resnext*_32x4d",
        map_keys=_timm_keys,
        model_kwargs=_timm_kwargs,
        aliases={**{f"seresnet{d}": f"se_resnet{d}" for d in (18, 34, 50, 101, 152)},
                 "seresnext50_32x4d": "se_resnext50_32x4d", "seresnext101_32x4d": "se_resnext101_32x4d"},
        targets=_SE_TARGETS + _PLAIN_TARGETS,
    ),
    "caffe-port": SourceLayout(
        name="caffe-port",
        description="the Caffe release's port (pretrainedmodels se_resnet*/se_resnext*/senet154, timm legacy_se*)",
        map_keys=_caffe_keys,
        model_kwargs=_caffe_kwargs,
        aliases={**{f"legacy_seresnet{d}": f"se_resnet{d}" for d in (18, 34, 50, 101, 152)},
                 "legacy_seresnext50_32x4d": "se_resnext50_32x4d",
                 "legacy_seresnext101_32x4d": "se_resnext101_32x4d", "legacy_senet154": "senet154"},
        targets=_SE_TARGETS,
    ),
    "torchvision": SourceLayout(
        name="torchvision",
        description="torchvision.models resnet*/resnext*/wide_resnet* (timm's plain resnet* share these keys)",
        map_keys=dict,
        model_kwargs=_timm_kwargs,
        targets=_PLAIN_TARGETS,
    ),
}

#: Layouts whose files may carry each other's keys: a timm file of a plain ResNet has torchvision's keys.
_COMPATIBLE = {("timm", "torchvision")}


def detect_layout(state: StateDict) -> str:
    """The layout of a state dict, read from its key names: ``caffe-port``, ``timm`` or ``torchvision``.

    ``layer0.*`` / ``se_module`` / ``last_linear`` are the Caffe port's alone; timm's deep stem (``conv1.0``) or SE
    blocks (``layerI.J.se.fc1``) on torchvision-style names are timm's; plain ResNet keys (``conv1``, ``layerI.J``,
    ``fc``, no SE) are torchvision's. Anything else raises :class:`~senet.errors.SenetError` naming a few keys.
    A senet file is recognised before this by the architecture it carries (see :func:`senet.io.read_config`).
    """
    from senet.errors import SenetError

    keys = list(state)
    if any(k.startswith(("layer0.", "last_linear.")) or ".se_module." in k for k in keys):
        return "caffe-port"
    resnet_like = any(re.match(r"layer\d+\.\d+\.conv\d\.weight$", k) for k in keys)
    if resnet_like and ("conv1.0.weight" in state or any(re.search(r"\.se\.fc1\.weight$", k) for k in keys)):
        return "timm"
    if resnet_like and "conv1.weight" in state:
        return "torchvision"
    shown = ", ".join(keys[:4]) + (" ..." if len(keys) > 4 else "")
    raise SenetError(f"cannot tell the layout of these weights (keys {shown}): the converter reads timm, "
                     f"Caffe-port (pretrainedmodels) and torchvision ResNet-family checkpoints")


def check_layout(found: str, given: str | None) -> str:
    """``given`` (a layout name) when the keys allow it, else the detected ``found``; a contradiction raises."""
    from senet.errors import SenetError

    if given is None:
        return found
    layout = get_layout(given).name
    if layout != found and (layout, found) not in _COMPATIBLE:
        raise SenetError(f"--from {layout} does not fit this file: its keys are in the {found} layout "
                         f"({LAYOUTS[found].description}); drop --from or pass --from {found}")
    return layout


def get_layout(source: str) -> SourceLayout:
    """The layout called ``source``; an unknown name raises ``ConfigError`` listing the known ones."""
    from senet.errors import ConfigError

    key = source.lower().replace("_", "-")
    if key in ("caffe", "pretrainedmodels", "legacy"):
        key = "caffe-port"
    if key not in LAYOUTS:
        raise ConfigError(f"unknown weight source {source!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[key]
