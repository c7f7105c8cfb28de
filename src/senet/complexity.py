"""Parameter and multiply-add counts with the paper's convention.

Convention (what every FLOP figure printed by ``senet`` means): **multiply-adds** of convolutions and fully
connected layers (one per multiply-accumulate, as the paper's "GFLOPs"), **plus one operation per element for
each SE block's squeeze (pooling) and scale (multiplication)**. Batch norm, activations, pooling outside SE blocks
and residual additions are not counted. This is the convention that reproduces Table 2's ResNet-50 3.86 ->
SE-ResNet-50 3.87 GFLOPs: the SE's FC layers add only ~2.5 M multiply-adds; its pooling and scaling add ~8 M.

The count runs on the ``meta`` device, so even SENet-154 at 320x320 allocates no activations or weights.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from senet.errors import ConfigError
from senet.layers import AttentionBlock

__all__ = ["MACS_CONVENTION", "count_params", "model_complexity", "se_params"]

MACS_CONVENTION = (
    "multiply-adds of conv and linear layers + 1 op per element for each SE block's pooling and scaling"
)


def count_params(model: nn.Module) -> int:
    """All parameters (trainable or not), counting shared tensors once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def se_params(model: nn.Module) -> int:
    """Parameters inside attention blocks (SE and its variants): the cost of Eq. 5."""
    seen: dict[int, torch.Tensor] = {}
    for m in model.modules():
        if isinstance(m, AttentionBlock):
            seen.update({id(p): p for p in m.parameters()})
    return sum(p.numel() for p in seen.values())


def _meta_copy(model: nn.Module) -> nn.Module:
    if all(p.is_meta for p in model.parameters()) and all(b.is_meta for b in model.buffers()):
        return model
    # Deep-copy onto "meta" without duplicating real storage: swap tensors for meta twins in the memo.
    memo: dict[int, Any] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


def model_complexity(
    model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224), *, batch_size: int = 1
) -> dict[str, int]:
    """Count ``params``, ``se_params`` and ``macs`` (see the module docstring) for one input of ``input_size``.

    ``input_size`` is (C, H, W) without the batch; ``macs`` is per batch of ``batch_size`` (1 by default).
    """
    if len(input_size) < 1 or any(not isinstance(d, int) or d < 1 for d in input_size):
        raise ConfigError(f"input_size must be positive integers such as (3, 224, 224), got {input_size!r}")
    meta_model = _meta_copy(model)
    was_training = meta_model.training
    meta_model.eval()
    element_ops = 0

    def count_se(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal element_ops
        x = inputs[0]
        # squeeze reads every element once, scale multiplies every element once (NoSqueeze has no pooling).
        ops_per_element = 1 if getattr(module, "squeeze", "avg") == "none" else 2
        element_ops += ops_per_element * math.prod(x.shape)

    outer = [m for m in meta_model.modules() if isinstance(m, AttentionBlock)]
    inner = {id(c) for m in outer for c in m.modules() if c is not m and isinstance(c, AttentionBlock)}
    handles = [m.register_forward_hook(count_se) for m in outer if id(m) not in inner]
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            meta_model(torch.empty((batch_size, *input_size), device="meta"))
    finally:
        for h in handles:
            h.remove()
        meta_model.train(was_training)
    return {
        "params": count_params(model),
        "se_params": se_params(model),
        "macs": counter.get_total_flops() // 2 + element_ops,
    }
