"""Fold a fixed per-channel scale into the layer that produces (or consumes) the scaled map.

When an SE block's excitation s (arXiv 1709.01507, Eq. 3) is replaced by a constant vector s_c, the block computes
U * s_c: a per-channel linear map with no parameters of its own. It can be absorbed by a neighbouring layer:

* a BatchNorm producing U: BN(x) * s_c is BN with gamma_c and beta_c multiplied by s_c (in training and eval mode);
* a convolution producing U: scale its output filters (and bias) by s_c;
* through ops that commute with a positive per-channel scale on the way back to one of those (ReLU, leaky ReLU,
  max/average pooling, dropout; ReLU and max pooling need s_c >= 0) and through a channel concatenation (each part
  folds into its own producer: the Inception modules);
* otherwise, when every consumer of U * s_c is a convolution (SE on a unit's input, the "pre" position): scale the
  convolutions' input channels, conv(x * s) = conv'(x).

The data flow is read from one real forward pass under a :class:`~torch.overrides.TorchFunctionMode`, so models
with Python control flow (which ``torch.fx`` cannot trace) work too. A fold is refused when the map U is also used
elsewhere (the SE-residual notebook model's x = SE(x) + x, the "post" and "identity" positions without a
projection): scaling the producer would change the other use as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from senet.errors import SenetError

__all__ = ["ChannelScale", "FoldError", "fold_channel_scales"]

#: Ops g with g(x * s) = g(x) * s for a per-channel s > 0 (any s for the linear ones).
_POSITIVE_HOMOGENEOUS = {"relu", "relu_", "leaky_relu", "leaky_relu_", "max_pool2d", "dropout", "dropout_"}
_LINEAR = {"avg_pool2d", "contiguous", "clone"}


class ChannelScale(nn.Module):
    """U * s with a fixed per-channel vector s (a buffer): an SE block whose excitation was replaced by a constant.

    The unfolded form of a constant replacement, kept as a reference; :func:`fold_channel_scales` removes it.
    """

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().flatten().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))


class FoldError(SenetError):
    """A constant scale that no neighbouring layer can absorb; the message says why."""


@dataclass(eq=False)
class _Op:
    name: str
    args: tuple
    kwargs: dict
    inputs: list[_Value] = field(default_factory=list)


@dataclass(eq=False)
class _Value:
    op: _Op | None
    shape: tuple[int, ...] = ()
    consumers: list[_Op] = field(default_factory=list)


class _Dataflow(TorchFunctionMode):
    """Records every torch op of one forward: which op produced each tensor value and which ops consumed it.

    Values are keyed by tensor identity; an in-place op (``relu_``) produces a new value for the same tensor. Ops
    that return no tensor (``dim``, ``size``) read metadata only and are not consumers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[int, _Value] = {}
        self._alive: list[torch.Tensor] = []  # keeps ids unique while tracing

    def value_of(self, t: torch.Tensor) -> _Value:
        v = self.values.get(id(t))
        if v is None:  # a model input, parameter, buffer or constant
            v = self.values[id(t)] = _Value(None, tuple(t.shape))
            self._alive.append(t)
        return v

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outs:
            return out
        op = _Op(getattr(func, "__name__", str(func)), args, kwargs)
        op.inputs = [self.value_of(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        for v in op.inputs:
            v.consumers.append(op)
        for t in outs:
            self.values[id(t)] = _Value(op, tuple(t.shape))
            self._alive.append(t)
        return out


@dataclass
class _Edit:
    kind: str  # "bn", "conv_out" or "conv_in"
    module: nn.Module
    start: int
    scale: torch.Tensor


def _arg(op: _Op, index: int, name: str):
    return op.args[index] if len(op.args) > index else op.kwargs.get(name)


class _Planner:
    """Finds, for each ChannelScale, the edits that absorb it; raises :class:`FoldError` naming the obstacle."""

    def __init__(self, model: nn.Module, flow: _Dataflow) -> None:
        self.owner = {id(p): m for m in model.modules() for p in m.parameters(recurse=False)}
        self.paths = {id(m): p for p, m in model.named_modules()}
        self.calls: dict[int, int] = {}
        for v in list(flow.values.values()):
            for op in v.consumers:
                if op.name in ("batch_norm", "conv2d"):
                    weight = _arg(op, 3 if op.name == "batch_norm" else 1, "weight")
                    if weight is not None:
                        self.calls[id(op)] = id(weight)
        uses: dict[int, set[int]] = {}
        for op_id, w in self.calls.items():
            uses.setdefault(w, set()).add(op_id)
        self.shared = {w for w, ops in uses.items() if len(ops) > 1}

    def _module(self, op: _Op, kind: type[nn.Module], weight_index: int) -> nn.Module:
        weight = _arg(op, weight_index, "weight")
        module = self.owner.get(id(weight)) if weight is not None else None
        if not isinstance(module, kind):
            raise FoldError(f"it is produced by a {op.name} that is not an affine {kind.__name__} module")
        if id(weight) in self.shared:
            raise FoldError(f"{self.paths.get(id(module), '?')} is called more than once per forward")
        return module

    def producer(self, value: _Value, lo: int, scale: torch.Tensor, used_by: _Op) -> list[_Edit]:
        """Edits that make ``value``'s channels ``lo .. lo + len(scale)`` come out multiplied by ``scale``."""
        others = [op.name for op in value.consumers if op is not used_by]
        if others:
            raise FoldError(f"the map it scales is also used by {', '.join(dict.fromkeys(others))}")
        op = value.op
        if op is None:
            raise FoldError("the map it scales is a model input or a stored tensor")
        if op.name == "batch_norm":
            return [_Edit("bn", self._module(op, nn.modules.batchnorm._BatchNorm, 3), lo, scale)]
        if op.name == "conv2d":
            return [_Edit("conv_out", self._module(op, nn.Conv2d, 1), lo, scale)]
        if op.name in _POSITIVE_HOMOGENEOUS | _LINEAR:
            if op.name in _POSITIVE_HOMOGENEOUS and bool((scale < 0).any()):
                raise FoldError(f"a negative constant cannot pass through {op.name}")
            return self.producer(op.inputs[0], lo, scale, op)
        if op.name == "cat":
            dim = _arg(op, 1, "dim") or 0
            if dim not in (1, -3) or len(value.shape) != 4:
                raise FoldError(f"it is produced by a concatenation along dim {dim}, not the channels")
            edits, start = [], 0
            for part in op.inputs:
                width = part.shape[1]
                a, b = max(lo, start), min(lo + len(scale), start + width)
                if a < b:
                    edits += self.producer(part, a - start, scale[a - lo:b - lo], op)
                start += width
            return edits
        raise FoldError(f"it is produced by {op.name}, which cannot absorb a per-channel constant")

    def consumers(self, value: _Value, scale: torch.Tensor) -> list[_Edit]:
        """Edits that make every consumer of ``value`` (U * s) give the same result from U itself."""
        edits = []
        for op in value.consumers:
            if op.name != "conv2d" or op.inputs[0] is not value:
                raise FoldError(f"its output feeds {op.name}, not only convolutions")
            edits.append(_Edit("conv_in", self._module(op, nn.Conv2d, 1), 0, scale))
        if not edits:
            raise FoldError("its output is not used")
        return edits


@torch.no_grad()
def _apply(edit: _Edit) -> None:
    s, lo = edit.scale, edit.start
    m = edit.module
    if edit.kind == "bn":
        if m.weight is None or m.bias is None:
            raise FoldError(f"{type(m).__name__} without affine parameters cannot absorb a scale")
        m.weight[lo:lo + len(s)] *= s.to(m.weight)
        m.bias[lo:lo + len(s)] *= s.to(m.bias)
    elif edit.kind == "conv_out":
        m.weight[lo:lo + len(s)] *= s.to(m.weight).view(-1, *([1] * (m.weight.dim() - 1)))
        if m.bias is not None:
            m.bias[lo:lo + len(s)] *= s.to(m.bias)
    else:  # conv_in: input channel c of group g meets weight[g's filters, c mod in_per_group]
        g, w = m.groups, m.weight
        grouped = w.view(g, w.shape[0] // g, w.shape[1], *w.shape[2:])
        grouped *= s.to(w).view(g, 1, w.shape[1], *([1] * (w.dim() - 2)))


def fold_channel_scales(model: nn.Module, example: torch.Tensor, names: dict[str, str] | None = None,
                        *, check: bool = True) -> dict[str, str]:
    """Absorb every :class:`ChannelScale` of ``model`` into a neighbouring layer and replace it by ``nn.Identity``.

    ``example`` is one input batch (a couple of images suffice) used to read the data flow and, with ``check``,
    to confirm the folded model gives the same output as before (float tolerance). ``names`` maps module paths to
    the names used in messages. Returns ``{path: "producer" | "consumers"}``, where each scale went. The model is
    left unchanged when any scale cannot be folded: :class:`FoldError` names the block and the reason.
    """
    names = names or {}
    scales = {p: m for p, m in model.named_modules() if isinstance(m, ChannelScale)}
    if not scales:
        return {}
    was_training = model.training
    model.eval()
    try:
        flow, seen = _Dataflow(), {}

        def capture(path):
            def hook(_m, inputs, output):
                seen[path] = (flow.value_of(inputs[0]), flow.value_of(output))
            return hook

        handles = [m.register_forward_hook(capture(p)) for p, m in scales.items()]
        try:
            with flow, torch.no_grad():
                reference = model(example)
        finally:
            for h in handles:
                h.remove()
        planner = _Planner(model, flow)
        plan, where = [], {}
        for path, module in scales.items():
            if path not in seen:
                raise FoldError(f"{names.get(path, path)} did not run in the forward pass")
            inp, out = seen[path]
            scale = module.scale.detach().double().cpu()
            try:
                plan += planner.producer(inp, 0, scale, out.op)
                where[path] = "producer"
            except FoldError as first:
                try:
                    plan += planner.consumers(out, scale)
                    where[path] = "consumers"
                except FoldError:
                    raise FoldError(f"cannot fold a constant in place of {names.get(path, path)}: {first}") from None
        _check_disjoint(plan)
        originals = {id(e.module): {k: v.clone() for k, v in e.module.named_parameters(recurse=False)} for e in plan}
        for e in plan:
            _apply(e)
        for path in scales:
            model.set_submodule(path, nn.Identity())
        if check:
            with torch.no_grad():
                folded = model(example)
            tol = 1e-4 * (1.0 + float(reference.abs().max()))
            if not torch.allclose(folded, reference, rtol=1e-4, atol=tol):
                for path, module in scales.items():  # undo: the caller's model stays as it was
                    model.set_submodule(path, module)
                for e in plan:
                    with torch.no_grad():
                        for k, v in originals[id(e.module)].items():
                            getattr(e.module, k).copy_(v)
                raise FoldError("folding the constant excitations changed the model's output; nothing was folded")
        return where
    finally:
        model.train(was_training)


def _check_disjoint(plan: list[_Edit]) -> None:
    """Two scales must not land on the same channels of one layer (each layer absorbs one constant per channel)."""
    taken: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for e in plan:
        span = (e.start, e.start + len(e.scale))
        key = (id(e.module), "in" if e.kind == "conv_in" else "out")
        for a, b in taken.get(key, []):
            if a < span[1] and span[0] < b:
                raise FoldError(f"two constant scales would fold into the same channels of one {type(e.module).__name__}")
        taken.setdefault(key, []).append(span)
