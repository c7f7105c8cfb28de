"""Pieces every model family shares (ResNet, BN-Inception, Inception-ResNet-v2, VGG, MobileNet, ShuffleNet).

:class:`ConvBnAct` (conv -> BN -> ReLU), :class:`ClassifierNet` (input checks, ``forward_features`` /
``forward_head`` / ``forward``) and :func:`init_conv_bn` (He-normal convs, identity BN).
"""

from __future__ import annotations

import torch
from torch import nn

from senet.errors import ConfigError
from senet.layers import AttentionBlock

__all__ = ["ClassifierNet", "ConvBnAct", "MaxPool2d", "init_conv_bn"]


class MaxPool2d(nn.MaxPool2d):
    """:class:`torch.nn.MaxPool2d` that, when no gradient is needed, pools a contiguous (NCHW) CPU map in
    channels_last layout.

    PyTorch's CPU max-pool kernel for NCHW maps is 3.5-5.3x slower than its NHWC kernel: the stem pool of a
    ResNet-50 (3x3, stride 2, on (N, 64, 112, 112)) takes ~3.7 ms at batch 1 and ~106 ms at batch 32 on 2 threads,
    against ~0.7 / ~30 ms for copying to channels_last, pooling and copying back (an interleaved A/B of a whole
    batch-1 SE-ResNet-50 forward measured +2%). A maximum is exact, so the values are those of the NCHW kernel bit for bit (tested, ties included),
    and the output is NCHW again. Only inference takes this path: in training the pool would keep the
    channels_last copy alive for its backward (one more stem-sized map) for a small gain (~10% of the pool's
    forward+backward). Everything else - a gradient to compute, channels_last input, CUDA, ``return_indices``,
    tracing, ``torch.compile`` and export - runs nn.MaxPool2d's forward. Same constructor, ``repr`` and (empty)
    state dict as nn.MaxPool2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


class ClassifierNet(nn.Module):
    """Base of every classifier family here: checks the input, then ``forward_head(forward_features(x))``.

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
            raise ConfigError(f"{name}: input {h}x{w} is too small; the network downsamples by {m}, so the minimum "
                              f"is {m}x{m}")

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
