"""Pieces every model family shares (ResNet, BN-Inception, Inception-ResNet-v2, VGG, MobileNet, ShuffleNet).

:class:`ConvBnAct` (conv -> BN -> ReLU), :class:`ClassifierNet` (input checks, ``forward_features`` /
``forward_head`` / ``forward``) and :func:`init_conv_bn` (He-normal convs, identity BN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import AttentionBlock
from senet.models.features import FeatureInfo, take_indices
from senet.models.naming import named_se_blocks

__all__ = ["ClassifierNet", "ConvBnAct", "MaxPool2d", "check_input_shape", "classifier_of", "init_conv_bn",
           "update_config"]


class MaxPool2d(nn.MaxPool2d):
    """:class:`torch.nn.MaxPool2d` that, when no gradient is needed, pools a contiguous (NCHW) CPU map in
    channels_last layout.

    PyTorch's CPU max-pool kernel for NCHW maps is several times slower than its NHWC kernel, by more than the
    cost of copying the map to channels_last and back (figures on the documentation's performance page). A
    maximum is exact, so the values are those of the NCHW kernel bit for bit (tested, ties included), and the
    output is NCHW again. Only inference takes this path: in training the pool would keep the
    channels_last copy alive for its backward (one more stem-sized map) for a small gain. Everything else - a gradient to compute, channels_last input, CUDA, ``return_indices``,
    tracing, ``torch.compile`` and export - runs nn.MaxPool2d's forward. Same constructor, ``repr`` and (empty)
    state dict as nn.MaxPool2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.fx.Proxy):  # a symbolic trace records the stock pooling
            return super().forward(x)
        if ((torch.is_grad_enabled() and x.requires_grad) or x.device.type != "cpu" or x.dim() != 4
                or self.return_indices or not x.is_contiguous()
                or x.is_contiguous(memory_format=torch.channels_last)
                or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class ConvBnAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU (``act=False`` leaves the ReLU out). Submodules ``conv``, ``bn``, ``act``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0, *, groups: int = 1, act: bool = True, bn_eps: float = 1e-5):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps)
        if act:
            self.act = nn.ReLU(inplace=True)


@torch.fx.wrap
def check_input_shape(x: torch.Tensor, in_chans: int, min_size: int, exact: bool, name: str) -> None:
    """Raise a one-line ConfigError for an input that is not (N, in_chans, H, W) with H, W >= ``min_size`` (equal
    to it when ``exact``).

    Wrapped for ``torch.fx``: a traced graph keeps the check as one call that runs on the real input (so a traced
    model still refuses bad input), instead of failing on a branch over a symbolic shape; ``torch.export``,
    ``torch.jit.trace`` and the ONNX exporters see static shapes and record no branch.
    """
    if x.dim() != 4 or x.shape[1] != in_chans:
        spatial = f"{min_size}, {min_size}" if exact else "H, W"
        raise ConfigError(f"{name} expects input of shape (N, {in_chans}, {spatial}) ({in_chans} channels); "
                          f"received {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if exact and (h != min_size or w != min_size):
        raise ConfigError(f"{name} expects {min_size}x{min_size} images (its classifier reads every pixel); "
                          f"received {h}x{w}")
    if h < min_size or w < min_size:
        raise ConfigError(f"{name}: input {h}x{w} is too small; the network downsamples by {min_size}, so the "
                          f"minimum is {min_size}x{min_size}")


class ClassifierNet(nn.Module):
    """Base of every classifier family here, with timm's model contract.

    ``forward(x) = forward_head(forward_features(x))``; ``forward_features`` checks the input, then runs
    :meth:`forward_stem`, the modules named in ``body`` in order, and :meth:`forward_final`. A family declares its
    stages with :meth:`set_stages` (which ``body`` module ends each stage, its width and downsampling); from that
    this class gives ``feature_info``, :meth:`forward_intermediates` and the ``features_only`` mode
    (:meth:`to_features_only`, ``create_model(name, features_only=True)``). The head (:meth:`forward_head`,
    :meth:`get_classifier`, :meth:`reset_classifier`) is global average pooling, dropout and ``fc``;
    ``num_classes=0`` makes ``fc`` an identity, so the model returns pooled features.

    Subclasses set ``in_chans``, ``min_input_size`` and ``body``, call :meth:`init_head` and :meth:`set_stages`.
    """

    in_chans: int
    min_input_size: int
    num_features: int
    num_classes: int
    #: Paths of the modules :meth:`forward_body` runs in order after :meth:`forward_stem`.
    body: tuple[str, ...] = ()
    #: True when the input must be exactly ``min_input_size`` on each side (a classifier over every pixel).
    exact_input_size = False
    #: Modules used only after the last stage (head and final norm); ``features_only`` drops them.
    head_modules: tuple[str, ...] = ("fc",)
    #: Stage indices a ``features_only`` model returns (None: a classifier).
    out_indices: tuple[int, ...] | None = None

    # -- construction -------------------------------------------------------------------------------------
    def init_head(self, num_features: int, num_classes: int, drop_rate: float, *, fc_in: int | None = None) -> None:
        """Set ``num_features`` (channels out of ``forward_features``), ``drop`` and ``fc`` (``fc_in`` inputs)."""
        check_num_classes(num_classes)
        if not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.num_features = num_features
        self.num_classes = num_classes
        self.fc_in = fc_in or num_features
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.fc_in, num_classes) if num_classes else nn.Identity()

    def set_stages(self, stages: list[tuple[str, int, int]]) -> None:
        """Declare the stages: ``(module path in body, channels, reduction)`` each, in forward order. Call it
        after every module (and SE block) is built: it records the SE blocks inside each stage."""
        steps = list(self.body)
        unknown = [path for path, _, _ in stages if path not in steps]
        if unknown:  # a programming error in a family, not user input
            raise ValueError(f"stage modules {unknown} are not in body {steps}")
        self._stage_steps = [steps.index(path) for path, _, _ in stages]
        paths = {id(m): p for p, m in self.named_modules()}
        blocks: list[list[str]] = [[] for _ in stages]
        for name, module in named_se_blocks(self).items():
            step = _owning_step(paths[id(module)], steps)
            stage = next((i for i, s in enumerate(self._stage_steps) if step is not None and step <= s), None)
            if stage is not None:
                blocks[stage].append(name)
        self._all_stages = FeatureInfo(
            {"num_chs": c, "reduction": r, "module": path, "index": i, "se_blocks": blocks[i]}
            for i, (path, c, r) in enumerate(stages))
        self.feature_info = FeatureInfo(self._all_stages)

    @staticmethod
    def check_in_chans(in_chans: int) -> int:
        if not isinstance(in_chans, int) or isinstance(in_chans, bool) or in_chans < 1:
            raise ConfigError(f"in_chans must be a positive integer, got {in_chans!r}")
        return in_chans

    # -- forward ------------------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ConfigError for an input that is not (N, in_chans, H, W) with H, W >= ``min_input_size``."""
        name = (getattr(self, "senet_config", None) or {}).get("name", type(self).__name__)
        check_input_shape(x, self.in_chans, self.min_input_size, self.exact_input_size, name)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """What runs before the first ``body`` module (nothing unless a family says otherwise)."""
        return x

    def run_step(self, path: str, x: torch.Tensor) -> torch.Tensor:
        """Run the ``body`` module at ``path`` on ``x``."""
        return self.get_submodule(path)(x)

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        """What runs after the last ``body`` module and before pooling (a final norm; nothing by default)."""
        return x

    def forward_body(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, body and final norm: (N, in_chans, H, W) -> (N, num_features, h, w), without the input check."""
        x = self.forward_stem(x)
        for path in self.body:
            x = self.run_step(path, x)
        return self.forward_final(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything before the global pooling: (N, in_chans, H, W) -> (N, num_features, h, w)."""
        self.check_input(x)
        return self.forward_body(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, classifier (``pre_logits=True`` stops before the classifier)."""
        x = self.drop(x.mean((2, 3)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.out_indices is not None:
            return self.forward_intermediates(x, indices=self.out_indices, intermediates_only=True)
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The stage maps of ``feature_info`` (timm's signature).

        Args:
            indices: which stages: None (all), an int n (the last n) or a list of indices (negative from the end).
            norm: pass the last map through the final norm (:meth:`forward_final`) when it is the last stage.
            stop_early: stop after the last requested stage (the returned final features are then that map).
            output_fmt: ``"NCHW"`` only.
            intermediates_only: return only the list of maps (and stop after the last one).

        Returns: ``(forward_features(x), maps)``, or ``maps`` when ``intermediates_only``.
        """
        if output_fmt != "NCHW":
            raise ConfigError(f"output_fmt={output_fmt!r} is not supported; these models give NCHW maps")
        take = take_indices(len(self._all_stages), indices)
        capture = [self._stage_steps[i] for i in take]
        last = len(self.body) - 1
        stop = max(capture) if (stop_early or intermediates_only) else last
        self.check_input(x)
        x = self.forward_stem(x)
        maps: list[torch.Tensor] = []
        for step, path in enumerate(self.body[:stop + 1]):
            x = self.run_step(path, x)
            if step in capture:
                maps.append(self.forward_final(x) if norm and step == last else x)
        if intermediates_only:
            return maps
        return (self.forward_final(x) if stop == last else x), maps

    # -- head ---------------------------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        """The final classifier layer (``fc``; an identity when ``num_classes == 0``)."""
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` outputs (0: pooled features).

        The model's build config (``senet_config``) is updated, so :func:`senet.save_model` and
        :func:`senet.load_model` rebuild the model with its new head.
        """
        check_num_classes(num_classes)
        ref = next(self.parameters(), None)
        fc = nn.Linear(self.fc_in, num_classes) if num_classes else nn.Identity()
        self.fc = fc if ref is None else fc.to(device=ref.device, dtype=ref.dtype)
        self.num_classes = num_classes
        update_config(self, num_classes=num_classes)

    # -- features_only ------------------------------------------------------------------------------------
    def to_features_only(self, out_indices: int | Sequence[int] | None = None) -> ClassifierNet:
        """Turn this model, in place, into a backbone whose ``forward`` returns the list of stage maps chosen by
        ``out_indices`` (as :meth:`forward_intermediates`); the head, the final norm and every module after the
        last chosen stage are removed, so each remaining parameter gets a gradient. Returns the model.
        """
        take = take_indices(len(self._all_stages), out_indices)
        last = max(self._stage_steps[i] for i in take)
        for path in self.body[last + 1:]:
            self.set_submodule(path, nn.Identity())
        self.body = tuple(self.body[:last + 1])
        for name in self.head_modules:
            if getattr(self, name, None) is not None:
                setattr(self, name, nn.Identity() if name == "fc" else None)
        self.num_classes = 0
        self.out_indices = tuple(take)
        self.feature_info = FeatureInfo(self._all_stages[i] for i in take)
        return self


def check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ConfigError(f"num_classes must be an integer >= 0, got {num_classes!r}")


def update_config(model: nn.Module, **kwargs: Any) -> None:
    """Record changed build arguments in ``model.senet_config`` (if it has one), so a saved file rebuilds it."""
    config = getattr(model, "senet_config", None)
    if config:
        model.senet_config = {"name": config["name"], "kwargs": {**config.get("kwargs", {}), **kwargs}}


def _owning_step(path: str, steps: list[str]) -> int | None:
    """Index of the body step whose module contains ``path`` (None: outside the body)."""
    for i, step in enumerate(steps):
        if path == step or path.startswith(step + "."):
            return i
    return None


def classifier_of(model: nn.Module) -> nn.Module | None:
    """The classifier of any model: ``get_classifier()`` (senet's and timm's contract), else torchvision's ``fc``."""
    return model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "fc", None)


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
