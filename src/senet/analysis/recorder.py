"""Record what every SE block excites: forward hooks on the gates, streamed into per-class statistics.

The excitation s = sigma(W2 delta(W1 z)) of an SE block (arXiv 1709.01507, Eq. 3) is the output of the block's
``gate`` submodule, so a forward hook reads it without touching the model. Each batch's vectors are folded into
:class:`~senet.analysis.stats.ClassStats` at once and then dropped: memory is O(blocks x classes x channels).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

import torch
from torch import nn

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    from typing_extensions import Self

from senet.analysis.stats import ClassStats, block_metrics
from senet.layers import AttentionBlock, SpatialSE
from senet.models.naming import named_se_blocks

__all__ = ["ExcitationRecorder", "channel_gate", "channel_gates"]


def channel_gate(block: nn.Module) -> nn.Module | None:
    """The submodule whose output is the block's per-channel excitation, or None for spatial-only attention.

    SE, ECA, eSE and Gather-Excite expose it as ``gate``; scSE (:class:`~senet.layers.ChannelSpatialSE`) as
    ``cse.gate`` (its ``sse.gate`` is a spatial map, not a channel excitation); sSE has none.
    """
    if isinstance(block, SpatialSE):
        return None
    gate = getattr(block, "gate", None)
    if isinstance(gate, nn.Module):
        return gate
    for child in block.children():
        if isinstance(child, AttentionBlock):
            found = channel_gate(child)
            if found is not None:
                return found
    return None


def channel_gates(model: nn.Module, blocks: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """``{block name: gate module}`` for every SE block of ``model`` that has a channel gate, in forward order.

    ``blocks`` restricts the result to those names (``SE_3_4``, or a module path for non-ResNet models). A model
    without channel gates raises ``ValueError``; an unknown block name raises ``ValueError`` listing the valid ones.
    """
    gates = {name: g for name, blk in named_se_blocks(model).items() if (g := channel_gate(blk)) is not None}
    if not gates:
        raise ValueError(
            f"{type(model).__name__} has no SE blocks with a channel excitation to record "
            "(build it with an SE attention layer, or retrofit one with senet.add_se)"
        )
    if blocks is None:
        return gates
    unknown = [b for b in blocks if b not in gates]
    if unknown:
        raise ValueError(f"unknown SE block(s) {', '.join(unknown)}; this model has {', '.join(gates)}")
    return {b: gates[b] for b in gates if b in set(blocks)}


class ExcitationRecorder:
    """Context manager that hooks every SE gate of ``model`` and streams excitations into per-class statistics.

    Example::

        with ExcitationRecorder(model, num_classes=10) as rec:
            for images, labels in loader:
                logits = rec.record(images, labels)      # forward under torch.inference_mode
        rec.stats()["SE_3_4"].mean                      # (classes, channels) class-mean excitation
        rec.metrics()                                    # the per-block numbers of senet.analysis.stats

    or, for a custom forward, ``with rec.labels(y): model(x)``. A forward without labels inside the context raises,
    so no batch is silently lost. Gate outputs are cast to float64 and, for maps that keep H x W (the NoSqueeze
    ablation, Gather-Excite with an extent), averaged over positions. Accumulators live on the gate's device
    (CPU for MPS, which lacks float64); any input precision works. While active the model is put in eval mode
    (``eval_mode=True``) and restored on exit; the hooks are removed on exit even after an error.

    Args:
        model: any model with SE blocks (see :func:`senet.models.named_se_blocks`).
        blocks: names of the blocks to record (default: all with a channel gate).
        num_classes: K, if known; otherwise it grows with the largest label seen.
        eval_mode: switch the model to ``eval()`` inside the context (batch norm uses running statistics).
    """

    def __init__(
        self,
        model: nn.Module,
        blocks: Sequence[str] | None = None,
        *,
        num_classes: int | None = None,
        eval_mode: bool = True,
    ) -> None:
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.model = model
        self.gates = channel_gates(model, blocks)
        self.num_classes = num_classes
        self.eval_mode = eval_mode
        self._stats: dict[str, ClassStats] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._labels: torch.Tensor | None = None
        self._labels_on: dict[torch.device, torch.Tensor] = {}
        self._was_training: bool | None = None
        self._batch_classes = num_classes or 1

    # -- context -------------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        if self._handles:
            raise RuntimeError("this ExcitationRecorder is already active")
        for name, gate in self.gates.items():
            self._handles.append(gate.register_forward_hook(self._make_hook(name)))
        if self.eval_mode:
            self._was_training = self.model.training
            self.model.eval()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the hooks and restore the model's training flag (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._was_training is not None:
            self.model.train(self._was_training)
            self._was_training = None
        self._labels = None
        self._labels_on.clear()

    @property
    def active(self) -> bool:
        return bool(self._handles)

    # -- feeding -------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def labels(self, labels: torch.Tensor | Sequence[int]) -> Iterator[None]:
        """Attribute every gate output produced inside this block to ``labels`` (one class index per image)."""
        if not self.active:
            raise RuntimeError("use the ExcitationRecorder as a context manager (`with ExcitationRecorder(m) as r:`)")
        y = torch.as_tensor(labels)
        if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"labels must be a 1-D tensor of class indices, got dtype {y.dtype}, shape {tuple(y.shape)}")
        y = y.long()
        hi = -1
        if y.numel():
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or (self.num_classes is not None and hi >= self.num_classes):
                bound = self.num_classes if self.num_classes is not None else "K"
                raise ValueError(f"labels must lie in [0, {bound}), got values {lo}..{hi}")
        self._batch_classes = self.num_classes if self.num_classes is not None else max(hi + 1, 1)
        self._labels, self._labels_on = y, {}
        try:
            yield
        finally:
            self._labels, self._labels_on = None, {}

    def record(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Run ``model(images)`` under ``torch.inference_mode`` while recording; return the model's output."""
        with self.labels(labels), torch.inference_mode():
            return self.model(images)

    def _make_hook(self, name: str):
        def hook(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
            self._accumulate(name, output)

        return hook

    def _accumulate(self, name: str, output: torch.Tensor) -> None:
        if self._labels is None:
            raise RuntimeError(
                "a forward ran inside ExcitationRecorder without labels: use rec.record(images, labels) "
                "or `with rec.labels(labels): model(images)`"
            )
        s = output.detach()
        if s.dim() < 2:
            raise ValueError(f"gate of {name} produced shape {tuple(s.shape)}; expected (N, C, ...)")
        device = torch.device("cpu") if s.device.type == "mps" else s.device
        s = s.to(device=device, dtype=torch.float64)
        if s.dim() > 2:
            s = s.flatten(2).mean(2)
        y = self._labels_on.get(device)
        if y is None:
            y = self._labels_on[device] = self._labels.to(device, non_blocking=True)
        if y.shape[0] != s.shape[0]:
            raise ValueError(f"{y.shape[0]} labels for a batch of {s.shape[0]} images (block {name})")
        batch = ClassStats.from_batch(s, y, self._batch_classes)
        current = self._stats.get(name)
        if current is None:
            self._stats[name] = batch
        else:
            current.merge_(batch)

    # -- results -------------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, ClassStats]:
        """``{block name: ClassStats}``: CPU copies, for the blocks that have seen at least one batch."""
        k = max((st.num_classes for st in self._stats.values()), default=0)
        return {n: self._stats[n].to("cpu", copy=True).grow_(k) for n in self.gates if n in self._stats}

    def metrics(self) -> dict[str, dict]:
        """``{block name: block_metrics(...)}`` - class specificity, saturation, spread (see senet.analysis.stats)."""
        return {name: block_metrics(st) for name, st in self.stats().items()}

    def state_nbytes(self) -> int:
        """Bytes held by the accumulators: O(blocks x classes x channels), independent of the images seen."""
        return sum(st.nbytes() for st in self._stats.values())

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._stats.clear()
