"""Multi-process details of ``senet train``: per-process random states, synchronised BatchNorm, who prints.

Batch normalisation (the BN after every convolution of the SE-ResNets, arXiv 1709.01507 section 3) normalises with
the statistics of the batch it sees. With ``W`` processes each one sees ``B / W`` images of the global batch ``B``,
so plain DDP normalises with per-shard statistics and keeps rank 0's running averages. ``--sync-bn`` makes every
BN layer use the mean and variance of the whole global batch, which is what one process with batch ``B`` computes.
PyTorch's :class:`torch.nn.SyncBatchNorm` only runs on accelerators (it refuses CPU tensors), so on CPU (gloo) the
layers become :class:`GlobalBatchNorm`, which sums the per-channel moments over processes with all-reduces.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["GlobalBatchNorm", "gather_rank_states", "is_global_zero", "restore_rank_state", "use_sync_batchnorm"]

def is_global_zero() -> bool:
    """True outside a distributed job and on its global rank 0: the one process that prints summaries."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def gather_rank_states(fabric: Any, generators: dict[str, torch.Generator]) -> list[dict[str, Any]] | None:
    """Every process's global RNG states and loader generators, gathered on rank 0 (None on the other ranks).

    Each process augments its own shard with its own random streams, so an exact resume needs all of them, not
    only rank 0's. Every process must call this (it is a collective).
    """
    from senet.train.state import capture_rng

    mine = {"rng": capture_rng(), "generators": {name: g.get_state() for name, g in generators.items()}}
    if fabric.world_size == 1:
        return [mine]
    gathered: list[Any] | None = [None] * fabric.world_size if fabric.global_rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    return gathered


def restore_rank_state(ranks: list[dict[str, Any]] | None, fabric: Any, generators: dict[str, torch.Generator]) -> bool:
    """Put back this process's states from :func:`gather_rank_states`; False when ``ranks`` has none for it.

    A checkpoint written with another number of processes (or before per-process states were kept) has none.
    """
    from senet.train.state import restore_rng

    if not ranks or len(ranks) != fabric.world_size:
        return False
    mine = ranks[fabric.global_rank]
    restore_rng(mine["rng"])
    for name, generator in generators.items():
        generator.set_state(mine["generators"][name])
    return True


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient: each input feeds every process's result."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of every process, for any device (the CPU path of ``--sync-bn``).

    In training mode two all-reduces give every process the global count ``n`` and mean ``mu`` (from the summed
    per-channel sums), then the biased variance ``sum((x - mu)^2) / n`` (two passes, as a single batch norm computes
    it, so no cancellation). Their backward passes all-reduce the gradients, so gradients reach every process's
    images as they would through one batch norm over the whole batch. The running variance gets the unbiased
    ``n / (n - 1)`` estimate, as :func:`torch.nn.functional.batch_norm` does. In eval mode, or outside a process
    group, it is plain BN.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input with a channel dimension, got shape {tuple(input.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.full((1,), x.numel() // x.shape[1], dtype=torch.float32, device=x.device)
        totals = _SumOverProcesses.apply(torch.cat([count, xf.sum(dims)]))
        n = totals[0].detach()
        mean = totals[1:] / n
        centred = xf - mean.view(shape)
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None:
            self._update_running_stats(mean.detach(), var.detach(), float(n))
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        self.num_batches_tracked += 1
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype), alpha=momentum)


def _convert(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a :class:`GlobalBatchNorm` holding the same tensors."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module


def use_sync_batchnorm(model: nn.Module, fabric: Any) -> nn.Module:
    """``model`` with BatchNorm synchronised across ``fabric``'s processes (unchanged, with a note, on one process).

    CUDA and other accelerators get :class:`torch.nn.SyncBatchNorm`; CPU gets :class:`GlobalBatchNorm`. The state
    dict keeps its keys, so the saved model loads into the plain architecture.
    """
    if fabric.world_size == 1:
        fabric.print("--sync-bn: one process, so BatchNorm already sees the whole batch; nothing to synchronise")
        return model
    if fabric.device.type == "cpu":
        return _convert(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
