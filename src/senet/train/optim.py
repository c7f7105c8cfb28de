"""What a run trains and how: freezing (``freeze``) and the optimizer (``optimizer``).

Freezing. ``all-but-head`` trains only the classifier; ``all-but-head-and-se`` the classifier and every SE block
(the paper's excitations re-fitted to a new task while the features stay). Frozen parameters get
``requires_grad=False`` and are left out of the optimizer. BatchNorm layers inside the frozen part also stay in
evaluation mode while training: in training mode they would normalise with each batch's statistics and overwrite
their running averages, so the frozen features would drift from the pretrained ones and differ between training
and inference.

Optimizers. ``sgd`` is the paper's: momentum, weight decay on every parameter. ``adamw`` (decoupled weight
decay) leaves biases and normalisation parameters - every parameter with fewer than two dimensions - out of the
decay: shrinking a BN's gamma or a bias towards zero regularises nothing, it only changes the function. Its first
moment's decay beta_1 is ``momentum`` (the same role: an average of past gradients; default 0.9 = AdamW's own),
beta_2 stays 0.999, so no option is accepted and ignored.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from senet.errors import ConfigError
from senet.models.common import classifier_of
from senet.train.config import TrainConfig

__all__ = ["apply_freeze", "make_optimizer", "train_mode"]


def _head(model: nn.Module) -> nn.Module:
    head = classifier_of(model)
    if not isinstance(head, nn.Module) or not any(True for _ in head.parameters()):
        raise ConfigError(f"cannot freeze all but the head: {type(model).__name__} has no classifier (fc) with "
                          f"parameters")
    return head


def apply_freeze(model: nn.Module, mode: str) -> list[nn.Module]:
    """Set ``requires_grad`` as ``mode`` says; return the BatchNorm layers of the frozen part (see module doc)."""
    if mode == "none":
        return []
    from senet.layers import AttentionBlock

    trainable = [_head(model)]
    if mode == "all-but-head-and-se":
        blocks = [m for m in model.modules() if isinstance(m, AttentionBlock)]
        if not blocks:
            raise ConfigError("--freeze all-but-head-and-se: the model has no SE blocks; use all-but-head")
        trainable += blocks
    elif mode != "all-but-head":
        raise ConfigError(f"unknown freeze mode {mode!r}")
    kept = {id(p) for m in trainable for p in m.parameters()}
    inside = {id(sub) for m in trainable for sub in m.modules()}
    for p in model.parameters():
        p.requires_grad_(id(p) in kept)
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and id(m) not in inside]


def train_mode(model: nn.Module, frozen_norms: list[nn.Module]) -> None:
    """``model.train()``, with the frozen part's BatchNorms kept in evaluation mode."""
    model.train()
    for norm in frozen_norms:
        norm.eval()


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters (see the module docstring for the weight-decay rule)."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every parameter is frozen")
    if config.optimizer == "sgd":
        return torch.optim.SGD([p for _, p in params], lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    groups: list[dict[str, Any]] = [
        {"params": [p for _, p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for _, p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=(config.momentum, 0.999))
