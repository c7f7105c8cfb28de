"""BN-Inception and SE-BN-Inception (arXiv 1709.01507, Table 2), plus the pieces every non-ResNet family shares.

BN-Inception is the network of Ioffe & Szegedy, "Batch Normalization" (ICML 2015, Fig. 5): GoogLeNet with BN after
every conv, 5x5 convs replaced by two 3x3 convs, and stride-2 modules 3c and 4e that concatenate a max-pooled
pass-through. SE-BN-Inception applies an SE block to the output of each of the ten Inception modules (the
SE-Inception module of the paper's Fig. 2), hidden width C/16. Input 224x224: 2.03 GMACs -> SE 2.04 (Table 2).

Shared pieces (used by :mod:`~senet.models.inception_resnet`, :mod:`~senet.models.vgg`,
:mod:`~senet.models.mobile`, :mod:`~senet.models.shufflenet`): :class:`ConvBnAct`, :func:`attention_factory`
and :class:`ClassifierNet` (input checks, ``forward_features`` / ``forward_head`` / ``forward``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import AttentionBlock, create_attn, resolve_attn
from senet.models.registry import register_model

__all__ = [
    "BNInception",
    "ClassifierNet",
    "ConvBnAct",
    "InceptionModule",
    "attention_factory",
    "bn_inception",
    "se_bn_inception",
]

#: Builds the attention module for a number of channels (None: no attention).
AttnFactory = Callable[[int], nn.Module | None]


class ConvBnAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU (``act=False`` leaves the ReLU out). Submodules ``conv``, ``bn``, ``act``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0, *, groups: int = 1, act: bool = True, bn_eps: float = 1e-5):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps)
        if act:
            self.act = nn.ReLU(inplace=True)


def attention_factory(attn_layer: str | Callable[..., nn.Module] | None, *, reduction: float | None = None,
                      squeeze: str | None = None, gate: str | None = None, se_bias: bool | None = None,
                      attn_kwargs: dict[str, Any] | None = None) -> AttnFactory | None:
    """A ``channels -> module`` factory for ``attn_layer`` (None when there is no attention).

    ``reduction`` (r), ``squeeze`` (F_sq), ``gate`` (sigma) and ``se_bias`` (biases on W1, W2) are passed to the
    layer only when set, so SqueezeExcite's own defaults (r = 16, avg, sigmoid, biases) apply otherwise and a layer
    that does not take an option (ECA has no ``reduction``) raises a ConfigError naming it - at build time.
    """
    given = {"reduction": reduction, "squeeze": squeeze, "gate": gate, "bias": se_bias}
    opts = {k: v for k, v in given.items() if v is not None}
    opts.update(attn_kwargs or {})
    factory = resolve_attn(attn_layer)
    if factory is None:
        if opts:
            names = ", ".join("se_bias" if k == "bias" else k for k in opts)
            raise ConfigError(f"{names} only apply with an attention layer, but attn_layer is None; "
                              "set attn_layer='se' (or use the se_* model)")
        return None
    create_attn(factory, 64, **opts)  # fail now, naming any option the layer does not take
    return lambda channels: create_attn(factory, channels, **opts)


class ClassifierNet(nn.Module):
    """Base of the non-ResNet families: checks the input, then ``forward_head(forward_features(x))``.

    Subclasses set ``in_chans``, ``min_input_size``, ``num_features``, ``drop`` and ``fc`` (via :meth:`init_head`)
    and implement :meth:`forward_body`. ``num_classes=0`` makes ``fc`` an identity: the model returns pooled
    features.
    """

    in_chans: int
    min_input_size: int
    num_features: int

    def init_head(self, num_features: int, num_classes: int, drop_rate: float, *, fc_in: int | None = None) -> None:
        """Set ``num_features`` (channels out of ``forward_features``), ``drop`` and ``fc`` (``fc_in`` inputs)."""
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ConfigError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        if not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.num_features = num_features
        self.num_classes = num_classes
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(fc_in or num_features, num_classes) if num_classes else nn.Identity()

    @staticmethod
    def check_in_chans(in_chans: int) -> int:
        if not isinstance(in_chans, int) or isinstance(in_chans, bool) or in_chans < 1:
            raise ConfigError(f"in_chans must be a positive integer, got {in_chans!r}")
        return in_chans

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ConfigError for an input that is not (N, in_chans, H, W) with H, W >= ``min_input_size``."""
        name = (getattr(self, "senet_config", None) or {}).get("name", type(self).__name__)
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ConfigError(f"{name} expects input of shape (N, {self.in_chans}, H, W) ({self.in_chans} channels); "
                              f"received {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h < self.min_input_size or w < self.min_input_size:
            m = self.min_input_size
            raise ConfigError(f"{name}: input {h}x{w} is too small; the minimum is {m}x{m}")

    def forward_body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The network between the input check and the head."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything before the global pooling: (N, in_chans, H, W) -> (N, num_features, h, w)."""
        if not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()):
            self.check_input(x)
        return self.forward_body(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, classifier (``pre_logits=True`` stops before the classifier)."""
        x = self.drop(x.mean((2, 3)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def init_conv_bn(model: nn.Module) -> None:
    """He-normal conv weights (fan-out), BN to identity; attention modules keep their own initialisation."""
    attn = {id(m) for a in model.modules() if isinstance(a, AttentionBlock) for m in a.modules()}
    for m in model.modules():
        if id(m) in attn:
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --- BN-Inception -------------------------------------------------------------------------------------------

#: Ioffe & Szegedy (2015), Fig. 5: name -> (#1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3,
#: pool type, pool projection, stride). Stride-2 modules have no 1x1 branch and pass the max-pool through.
BN_INCEPTION_MODULES: dict[str, tuple[int, int, int, int, int, str, int, int]] = {
    "inception_3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "inception_3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "inception_3c": (0, 128, 160, 64, 96, "max", 0, 2),
    "inception_4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "inception_4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "inception_4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "inception_4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "inception_4e": (0, 128, 192, 192, 256, "max", 0, 2),
    "inception_5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "inception_5b": (352, 192, 320, 192, 224, "max", 128, 1),
}


class InceptionModule(nn.Module):
    """One BN-Inception module: four parallel branches concatenated, then (optionally) attention at ``se``.

    Branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (the factorised 5x5); pool (-> 1x1 projection). With stride 2
    the 3x3s that end a branch carry the stride, the 1x1 branch is absent and the max-pool passes through.
    """

    def __init__(self, in_ch: int, spec: tuple[int, int, int, int, int, str, int, int],
                 attn_factory: AttnFactory | None = None) -> None:
        super().__init__()
        c1, c3r, c3, cd3r, cd3, pool, proj, stride = spec
        self.branch1x1 = ConvBnAct(in_ch, c1, 1) if c1 else None
        self.branch3x3 = nn.Sequential(ConvBnAct(in_ch, c3r, 1), ConvBnAct(c3r, c3, 3, stride, 1))
        self.branch3x3dbl = nn.Sequential(ConvBnAct(in_ch, cd3r, 1), ConvBnAct(cd3r, cd3, 3, 1, 1),
                                          ConvBnAct(cd3, cd3, 3, stride, 1))
        # Padding 1 keeps every branch at ceil(H / stride), whatever the input size.
        pool_layer = (nn.MaxPool2d(3, stride, 1) if pool == "max" else nn.AvgPool2d(3, stride, 1))
        self.branch_pool = nn.Sequential(pool_layer, ConvBnAct(in_ch, proj, 1)) if proj else pool_layer
        self.out_channels = c1 + c3 + cd3 + (proj or in_ch)
        self.se = attn_factory(self.out_channels) if attn_factory is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        if self.branch1x1 is not None:
            branches.insert(0, self.branch1x1(x))
        out = torch.cat(branches, 1)
        return self.se(out) if self.se is not None else out


class BNInception(ClassifierNet):
    """BN-Inception (224x224, 1024 features); ``attn_layer="se"`` gives SE-BN-Inception. See the module docstring.

    Modules are named as in the Caffe release (``inception_3a`` .. ``inception_5b``); the attention module of each
    sits at ``inception_XY.se``.
    """

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 attn_layer: str | Callable[..., nn.Module] | None = None, reduction: float | None = None,
                 squeeze: str | None = None, gate: str | None = None, se_bias: bool | None = None,
                 attn_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        factory = attention_factory(attn_layer, reduction=reduction, squeeze=squeeze, gate=gate, se_bias=se_bias,
                                    attn_kwargs=attn_kwargs)
        self.in_chans = self.check_in_chans(in_chans)
        self.default_input_size = (in_chans, 224, 224)
        self.min_input_size = 1
        self.conv1 = ConvBnAct(in_chans, 64, 7, 2, 3)
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        self.conv2_reduce = ConvBnAct(64, 64, 1)
        self.conv2 = ConvBnAct(64, 192, 3, 1, 1)
        self.pool2 = nn.MaxPool2d(3, 2, 1)
        channels = 192
        self.module_names = list(BN_INCEPTION_MODULES)
        for name, spec in BN_INCEPTION_MODULES.items():
            module = InceptionModule(channels, spec, factory)
            self.add_module(name, module)
            channels = module.out_channels
        self.init_head(channels, num_classes, drop_rate)
        init_conv_bn(self)

    def forward_body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(self.conv2_reduce(x)))
        for name in self.module_names:
            x = getattr(self, name)(x)
        return x


@register_model
def bn_inception(**kwargs: Any) -> BNInception:
    """BN-Inception (Ioffe & Szegedy 2015): 224x224, 2.03 GMACs (Table 2)."""
    return BNInception(**kwargs)


@register_model
def se_bn_inception(**kwargs: Any) -> BNInception:
    """SE-BN-Inception: SE (r = 16) on the output of each Inception module, 2.04 GMACs (Table 2)."""
    return BNInception(**{"attn_layer": "se", **kwargs})
