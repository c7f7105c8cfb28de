"""An opt-in fused GPU path for the SE-ResNet tail ``shortcut + U * s`` and its backward, written in Triton.

Why: on an H100 (bf16, eager) SE adds +19% (contiguous) / +63% (channels_last) to a ResNet-50 training step, and
the profile puts most of it in PyTorch's generic broadcasting elementwise kernels: the forward ``addcmul``, the
scale's two backward products and the in-place add that accumulates the squeeze's gradient into dL/dU. This module
replaces them with three kernels that read each full-size tensor as few times as the math allows:

* forward:  ``out = shortcut + U * s[n, c]``                       (reads U, shortcut; writes out)
* backward: ``g_s[n, c] = sum_hw g * U``                           (reads g, U; writes only (N, C))
            ``g_U = g * s[n, c] + g_z[n, c] / HW``                 (reads g; writes g_U) - the squeeze's gradient
            is added inside the kernel, so autograd never adds a broadcast tensor; ``g_shortcut`` is ``g`` itself.

The squeeze z = mean_hw(U) is PyTorch's own reduction and the excitation s = sigmoid(W2 relu(W1 z + b1) + b2) runs
in float32 on the (N, C) descriptor, its backward written out by hand (four small matrix products). The PyTorch
path does ~9 full-size passes in the backward, this one 4.

Status: correct (tests compare it with the eager block through Triton's interpreter on the CPU, values and every
gradient), **not yet measured on a GPU**: it is off unless ``SENET_SE_KERNEL=triton`` is set or :func:`enable` is
called, and ``benchmarks/run_gpu_triton.sh`` is the one script a GPU session runs to measure it.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

__all__ = ["ENV_VAR", "FusedScaleAdd", "available", "enable", "enabled"]

#: ``SENET_SE_KERNEL=triton`` turns the fused path on for CUDA tensors (``eager``, the default, leaves it off).
ENV_VAR = "SENET_SE_KERNEL"
_state = {"enabled": os.environ.get(ENV_VAR, "eager").strip().lower() == "triton"}
_BLOCK = 1024
_BLOCK_C = 32
_BLOCK_HW = 64


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available() -> bool:
    """True when Triton imports (the kernels run on CUDA, or anywhere under ``TRITON_INTERPRET=1``)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def enable(on: bool = True) -> None:
    """Turn the fused path on or off for this process (overrides ``SENET_SE_KERNEL``)."""
    if on and not available():
        raise RuntimeError("the fused SE kernel needs Triton (pip install triton), which is not importable here")
    _state["enabled"] = bool(on)


def enabled() -> bool:
    return _state["enabled"]


def applies(u: torch.Tensor, shortcut: torch.Tensor) -> bool:
    """True when :class:`FusedScaleAdd` should run for these tensors: enabled, on CUDA (or the interpreter),
    4-D float32/bfloat16/float16, same shape/dtype/device, each dense in the same memory format, not while
    compiling, tracing or exporting."""
    if not _state["enabled"] or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if not (u.is_cuda or _interpreting()) or u.dim() != 4:
        return False
    if u.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return False  # the kernels compute in float32: float64 keeps the exact eager path
    if shortcut.shape != u.shape or shortcut.dtype != u.dtype or shortcut.device != u.device:
        return False
    return _layout(u) is not None and _layout(u) == _layout(shortcut)


def _layout(t: torch.Tensor) -> str | None:
    """"nchw" or "nhwc" for a dense map in that memory format, None otherwise (a channels_last check comes second,
    so a map that is both - C == 1 or H == W == 1 - counts as NCHW)."""
    if t.is_contiguous():
        return "nchw"
    if t.is_contiguous(memory_format=torch.channels_last):
        return "nhwc"
    return None


def _kernels():
    """Compile-on-first-use: the Triton kernels are defined only when the fused path runs."""
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import triton
    import triton.language as tl

    @triton.jit
    def scale_add_fwd(u_ptr, r_ptr, s_ptr, out_ptr, numel, C, HW, NHWC: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < numel
        nc = (offs // (HW * C)) * C + offs % C if NHWC else offs // HW
        u = tl.load(u_ptr + offs, mask=mask).to(tl.float32)
        r = tl.load(r_ptr + offs, mask=mask).to(tl.float32)
        s = tl.load(s_ptr + nc, mask=mask)
        tl.store(out_ptr + offs, (r + u * s).to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def scale_grad(g_ptr, u_ptr, gs_ptr, C, HW, stride_c, stride_hw, BLOCK_C: tl.constexpr,
                   BLOCK_HW: tl.constexpr):
        n = tl.program_id(0).to(tl.int64)
        cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
        base = n * C * HW
        for start in range(0, HW, BLOCK_HW):
            hw = start + tl.arange(0, BLOCK_HW)
            offs = base + cs[:, None] * stride_c + hw[None, :] * stride_hw
            mask = (cs[:, None] < C) & (hw[None, :] < HW)
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            acc += g * u
        tl.store(gs_ptr + n * C + cs, tl.sum(acc, axis=1), mask=cs < C)

    @triton.jit
    def input_grad(g_ptr, s_ptr, gz_ptr, gu_ptr, numel, C, HW, NHWC: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < numel
        nc = (offs // (HW * C)) * C + offs % C if NHWC else offs // HW
        g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
        s = tl.load(s_ptr + nc, mask=mask)
        gz = tl.load(gz_ptr + nc, mask=mask)
        tl.store(gu_ptr + offs, (g * s + gz).to(gu_ptr.dtype.element_ty), mask=mask)

    _KERNELS = (triton, scale_add_fwd, scale_grad, input_grad)
    return _KERNELS


_KERNELS = None


def _linear_weight(w: torch.Tensor) -> torch.Tensor:
    return w.flatten(1).float()


class FusedScaleAdd(torch.autograd.Function):
    """``shortcut + U * sigmoid(W2 relu(W1 mean_hw(U) + b1) + b2)`` with the fused kernels above.

    Inputs: U and shortcut (N, C, H, W), both NCHW or both channels_last, same dtype; fc1/fc2 weights as stored by
    :class:`~senet.layers.squeeze_excite.PointwiseConv2d` ((C/r, C, 1, 1) and (C, C/r, 1, 1)) and their biases (or
    None). The excitation runs in float32 whatever U's dtype; the output has U's dtype and memory format.
    """

    @staticmethod
    def forward(ctx, u, shortcut, w1, b1, w2, b2):
        triton, fwd, _, _ = _kernels()
        _, c, h, w = u.shape
        nhwc = _layout(u) == "nhwc"
        with torch.autocast(u.device.type, enabled=False):
            z = u.float().mean((2, 3))
            h_act = F.relu(F.linear(z, _linear_weight(w1), None if b1 is None else b1.float()))
            s = torch.sigmoid(F.linear(h_act, _linear_weight(w2), None if b2 is None else b2.float())).contiguous()
        out = torch.empty_like(u)
        numel = u.numel()
        fwd[(triton.cdiv(numel, _BLOCK),)](u, shortcut, s, out, numel, c, h * w, NHWC=nhwc, BLOCK=_BLOCK)
        ctx.save_for_backward(u, z, h_act, s, w1, w2)
        ctx.has_bias = (b1 is not None, b2 is not None)
        ctx.nhwc = nhwc
        return out

    @staticmethod
    def backward(ctx, grad):
        triton, _, scale_grad, input_grad = _kernels()
        u, z, h_act, s, w1, w2 = ctx.saved_tensors
        n, c, h, w = u.shape
        hw = h * w
        fmt = torch.channels_last if ctx.nhwc else torch.contiguous_format
        grad = grad.contiguous(memory_format=fmt)
        g_s = torch.empty(n, c, device=u.device, dtype=torch.float32)
        stride_c, stride_hw = (1, c) if ctx.nhwc else (hw, 1)
        scale_grad[(n, triton.cdiv(c, _BLOCK_C))](grad, u, g_s, c, hw, stride_c, stride_hw,
                                                   BLOCK_C=_BLOCK_C, BLOCK_HW=_BLOCK_HW)
        with torch.autocast(u.device.type, enabled=False):
            # The excitation's backward, written out: s = sigmoid(a2), a2 = W2 h + b2, h = relu(a1), a1 = W1 z + b1.
            g_a2 = g_s * s * (1.0 - s)
            g_w2, g_b2 = g_a2.t() @ h_act, g_a2.sum(0)
            g_a1 = (g_a2 @ _linear_weight(w2)) * (h_act > 0)
            g_w1, g_b1 = g_a1.t() @ z, g_a1.sum(0)
            g_z = (g_a1 @ _linear_weight(w1)) * (1.0 / hw)
        g_u = None
        if ctx.needs_input_grad[0]:
            g_u = torch.empty_like(u)
            numel = u.numel()
            input_grad[(triton.cdiv(numel, _BLOCK),)](grad, s, g_z.contiguous(), g_u, numel, c, hw,
                                                      NHWC=ctx.nhwc, BLOCK=_BLOCK)
        g_shortcut = grad if ctx.needs_input_grad[1] else None
        has_b1, has_b2 = ctx.has_bias
        return (g_u, g_shortcut, g_w1.view(w1.shape).to(w1.dtype), g_b1.to(w1.dtype) if has_b1 else None,
                g_w2.view(w2.shape).to(w2.dtype), g_b2.to(w2.dtype) if has_b2 else None)
