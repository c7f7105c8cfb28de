"""Fold each inference-mode BatchNorm into the convolution it follows: an inference copy with fewer passes.

In evaluation BN is a per-channel affine map ``y = gamma * (x - mu) / sqrt(var + eps) + beta`` with fixed
statistics, so after a convolution ``x = W * u + b`` it folds into the convolution itself:
``W' = W * k`` and ``b' = (b - mu) * k + beta`` with ``k = gamma / sqrt(var + eps)`` per output channel. The
folded model computes the same function (to float rounding) and skips one full read and write of every feature
map that had a BN (``benchmarks/bench_models.py --fold-bn`` measures it). timm and torchvision leave BN unfolded in eager mode.

Which pairs fold, decided by structure and never by names alone:

* the units of the ResNet family (:class:`~senet.models.blocks.ResidualUnit`): ``conv1/bn1``, ``conv2/bn2``,
  ``conv3/bn3`` in post-activation units; in pre-activation units each conv's BN is the *next* one
  (``conv1/bn2``, ``conv2/bn3``), and the unit's first BN, which acts on the input, stays;
* the ResNet stems' ``conv{k}/bn{k}`` and VGG's ``conv/bn`` units;
* any ``nn.Sequential`` (e.g. :class:`~senet.models.common.ConvBnAct` of the Inception nets) in which a ``Conv2d`` is directly followed by a ``BatchNorm2d`` (projection shortcuts,
  VGG's features).

Anything else is left as it is - a unit or Sequential subclass with its own forward, a conv used in two places,
a parametrised or hooked conv, the ``add_se``-retrofitted torchvision units' own BNs - so the result computes the
same function; :func:`fold_batchnorm` returns how many BNs it
folded. The copy is for inference and export: its weights no longer fit the architecture, so
:func:`senet.save_model` refuses it.
"""

from __future__ import annotations

import copy
from itertools import pairwise

import torch
from torch import nn

__all__ = ["fold_batchnorm", "fold_conv_bn"]

#: Set on a folded copy; :func:`senet.io.save_model` checks it.
FOLDED_ATTR = "senet_bn_folded"


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (with its running statistics) into ``conv`` in place, giving ``conv`` a bias if it had none."""
    if not bn.track_running_stats or bn.running_mean is None:
        raise ValueError("only a BatchNorm with running statistics can be folded")
    k = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        k = k * bn.weight.double()
    shift = -bn.running_mean.double() * k
    if conv.bias is not None:
        shift = shift + conv.bias.double() * k
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    dtype = conv.weight.dtype
    conv.weight.copy_((conv.weight.double() * k.view(-1, 1, 1, 1)).to(dtype))
    conv.bias = nn.Parameter(shift.to(dtype), requires_grad=conv.weight.requires_grad)


def _unit_pairs(unit: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) attribute names of a ResNet-family unit, in the order its branch applies them; none for a
    subclass with its own ``branch`` (its order is unknown)."""
    from senet.models.blocks import BasicBlock, Bottleneck

    branch = type(unit).branch
    if branch is Bottleneck.branch:
        convs, bns = ["conv1", "conv2", "conv3"], ["bn1", "bn2", "bn3"]
    elif branch is BasicBlock.branch:
        convs, bns = ["conv1", "conv2"], ["bn1", "bn2"]
    else:
        return []
    if unit.preact:  # BN1 acts on the unit's input; BN(k+1) follows conv(k); the last conv has no BN after it
        return list(zip(convs[:-1], bns[1:]))
    return list(zip(convs, bns))


def _foldable(conv: object, bn: object, shared: set[int]) -> bool:
    """A plain conv used once (no parametrisation or hooks that would recompute or watch its weight) and a BN with
    running statistics."""
    from torch.nn.utils import parametrize

    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and id(conv) not in shared and not parametrize.is_parametrized(conv)
            and not (conv._forward_pre_hooks or conv._forward_hooks))


def _fold_attr_pairs(module: nn.Module, pairs: list[tuple[str, str]], shared: set[int]) -> int:
    done = 0
    for conv_name, bn_name in pairs:
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if _foldable(conv, bn, shared):
            fold_conv_bn(conv, bn)
            setattr(module, bn_name, nn.Identity())
            done += 1
    return done


def _fold_sequential(seq: nn.Sequential, shared: set[int]) -> int:
    if type(seq).forward is not nn.Sequential.forward:  # a subclass with its own forward: order unknown
        return 0
    done = 0
    names = list(seq._modules)
    for first, second in pairwise(names):
        conv, bn = seq._modules[first], seq._modules[second]
        if _foldable(conv, bn, shared):
            fold_conv_bn(conv, bn)
            seq._modules[second] = nn.Identity()
            done += 1
    return done


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> tuple[nn.Module, int]:
    """An evaluation-mode copy of ``model`` (or ``model`` itself with ``inplace``) with BNs folded into convs.

    Returns (the folded model, how many BNs were folded). The model's outputs in evaluation mode are unchanged
    up to float rounding (``tests/test_fold.py`` checks every family but Inception-ResNet-v2 in float64).
    """
    from senet.models.blocks import ResidualUnit
    from senet.models.resnet import ResNet
    from senet.models.vgg import ConvUnit

    folded = model if inplace else copy.deepcopy(model)
    folded.eval()
    seen: set[int] = set()
    shared: set[int] = set()  # modules reachable under two names: folding one use would change the other
    for _, m in folded.named_modules(remove_duplicate=False):
        (shared if id(m) in seen else seen).add(id(m))
    done = 0
    for module in list(folded.modules()):
        if isinstance(module, ResidualUnit):
            done += _fold_attr_pairs(module, _unit_pairs(module), shared)
        elif isinstance(module, ResNet):  # a pre-activation CIFAR stem has no bn1: nothing to fold there
            stem = [(f"conv{k}", f"bn{k}") for k in range(1, module.stem_convs + 1)]
            done += _fold_attr_pairs(module, stem, shared)
        elif isinstance(module, ConvUnit):
            done += _fold_attr_pairs(module, [("conv", "bn")], shared)
        elif isinstance(module, nn.Sequential):
            done += _fold_sequential(module, shared)
    setattr(folded, FOLDED_ATTR, True)
    return folded, done
