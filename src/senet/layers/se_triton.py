"""An opt-in fused GPU path for the SE-ResNet tail ``shortcut + U * s`` and its backward, written in Triton.

Why: on an H100 (bf16, eager) SE adds +19% (contiguous) / +63% (channels_last) to a ResNet-50 training step, and
the profile puts most of it in PyTorch's generic broadcasting elementwise kernels: the forward ``addcmul``, the
scale's two backward products and the in-place add that accumulates the squeeze's gradient into dL/dU. This module
replaces them with three kernel launches that read each full-size tensor as few times as the math allows:

* forward:  ``out = shortcut + U * s[n, c]``                       (reads U, shortcut; writes out)
* backward: ``g_s[n, c] = sum_hw g * U``                           (reads g, U; writes only (N, C))
            ``g_U = g * s[n, c] + g_z[n, c] / HW``                 (reads g; writes g_U) - the squeeze's gradient
            is added inside the kernel, so autograd never adds a broadcast tensor; ``g_shortcut`` is ``g`` itself.

The squeeze z = mean_hw(U) is PyTorch's own reduction and the excitation s = sigmoid(W2 relu(W1 z + b1) + b2) runs
in float32 on the (N, C) descriptor, its backward written out by hand (four small matrix products). The PyTorch
path does ~9 full-size passes in the backward, this one 4.

Layouts: NCHW kernels give each (n, c) row of H*W elements to one program (the per-channel scalars are loaded
once, no index division); channels_last kernels take tiles of positions x channels of one sample, channels
innermost, so loads are contiguous along C.

Status: correct (``tests/test_se_triton.py`` compares it with the eager block through Triton's interpreter on the
CPU - values and every gradient, NCHW and channels_last, fp32 and bf16 autocast - and compiles every kernel variant
ahead of time to sm_90 cubins), and off unless :func:`enable` is called (the benchmarks call
:func:`enable_from_environment`, which reads ``SENET_SE_KERNEL=triton``): whether it pays on a GPU is measured by
``benchmarks/run_gpu_triton.sh``.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["ENV_VAR", "FusedScaleAdd", "applies", "available", "enable", "enable_from_environment", "enabled"]

#: ``SENET_SE_KERNEL=triton`` asks :func:`enable_from_environment` to turn the fused path on (``eager``: off).
ENV_VAR = "SENET_SE_KERNEL"
_state = {"enabled": False}
#: Tile sizes: NCHW kernels walk one (n, c) row of HW elements per program (at most this many at a time, fewer
#: for small maps); NHWC kernels take a tile of positions x channels of one sample, channels innermost.
_BLOCK_HW_ROW = 1024
_NHWC_TILE = (32, 128)  # (positions, channels)
_NCHW_DOT_TILE = (64, 64)  # (positions, channels) of the NCHW reduction


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


def enable_from_environment() -> bool:
    """Apply ``SENET_SE_KERNEL`` now: ``triton`` enables the fused path (a warning and no change without Triton),
    ``eager`` (or unset) disables it, anything else warns. Returns :func:`enabled`. Called by the benchmark scripts;
    the library itself never reads the environment."""
    choice = os.environ.get(ENV_VAR, "eager").strip().lower()
    if choice == "triton":
        if available():
            _state["enabled"] = True
        else:
            warnings.warn(f"{ENV_VAR}=triton, but Triton is not importable: the SE tail stays eager", stacklevel=2)
    elif choice == "eager":
        _state["enabled"] = False
    else:
        warnings.warn(f"{ENV_VAR}={choice!r} is neither 'eager' nor 'triton': the SE tail stays eager", stacklevel=2)
    return _state["enabled"]


def applies(u: torch.Tensor, shortcut: torch.Tensor) -> bool:
    """True when :class:`FusedScaleAdd` should run for these tensors: enabled, on CUDA (or the interpreter),
    4-D float32/bfloat16/float16, same shape/dtype/device, each dense in the same memory format, not while
    compiling, tracing or exporting."""
    if not _state["enabled"] or isinstance(u, torch.fx.Proxy) or torch.compiler.is_compiling() or torch.jit.is_tracing():
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
    """Compile-on-first-use: the Triton kernels are defined only when the fused path runs.

    Offsets inside one sample are int32 (C * H * W < 2**31, any realistic map); the sample's base offset is int64.
    """
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import triton
    import triton.language as tl

    @triton.jit
    def affine_nchw(x_ptr, s_ptr, add_ptr, out_ptr, HW, ADD_MAP: tl.constexpr, BLOCK: tl.constexpr):
        """out = x * s[n, c] + (add[element] if ADD_MAP else add[n, c]); grid (N * C, cdiv(HW, BLOCK))."""
        nc = tl.program_id(0).to(tl.int64)
        hw = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = hw < HW
        base = nc * HW
        x = tl.load(x_ptr + base + hw, mask=mask).to(tl.float32)
        s = tl.load(s_ptr + nc)
        if ADD_MAP:
            add = tl.load(add_ptr + base + hw, mask=mask).to(tl.float32)
        else:
            add = tl.load(add_ptr + nc)
        tl.store(out_ptr + base + hw, (x * s + add).to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def affine_nhwc(x_ptr, s_ptr, add_ptr, out_ptr, C, HW, ADD_MAP: tl.constexpr, BLOCK_P: tl.constexpr,
                    BLOCK_C: tl.constexpr):
        """The same for channels_last; grid (N, cdiv(HW, BLOCK_P), cdiv(C, BLOCK_C))."""
        n = tl.program_id(0).to(tl.int64)
        p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
        cs = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
        cmask = cs < C
        mask = (p[:, None] < HW) & cmask[None, :]
        base = n * HW * C
        offs = p[:, None] * C + cs[None, :]
        x = tl.load(x_ptr + base + offs, mask=mask).to(tl.float32)
        s = tl.load(s_ptr + n * C + cs, mask=cmask)[None, :]
        if ADD_MAP:
            add = tl.load(add_ptr + base + offs, mask=mask).to(tl.float32)
        else:
            add = tl.load(add_ptr + n * C + cs, mask=cmask)[None, :]
        tl.store(out_ptr + base + offs, (x * s + add).to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def channel_dot(g_ptr, u_ptr, out_ptr, C, HW, stride_p, stride_c, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
        """out[n, c] = sum_hw g * u over (positions x channels) tiles of one sample; grid (N, cdiv(C, BLOCK_C)).
        Strides (1, HW) for NCHW, (C, 1) for channels_last: Triton specialises the stride of 1, so the loads are
        contiguous along positions or along channels respectively."""
        n = tl.program_id(0).to(tl.int64)
        cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        base = n * C * HW
        acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
        for start in range(0, HW, BLOCK_P):
            p = start + tl.arange(0, BLOCK_P)
            offs = p[:, None] * stride_p + cs[None, :] * stride_c
            mask = (p[:, None] < HW) & (cs[None, :] < C)
            g = tl.load(g_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
            u = tl.load(u_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
            acc += g * u
        tl.store(out_ptr + n * C + cs, tl.sum(acc, axis=0), mask=cs < C)

    _KERNELS = {"triton": triton, "affine_nchw": affine_nchw, "affine_nhwc": affine_nhwc,
                "channel_dot": channel_dot}
    return _KERNELS


def _affine(x: torch.Tensor, s: torch.Tensor, add: torch.Tensor, out: torch.Tensor, nhwc: bool) -> None:
    """``out = x * s[n, c] + add`` with ``add`` a map like ``x`` or an (N, C) float32 tensor; s is (N, C) float32."""
    k = _kernels()
    n, c, h, w = x.shape
    hw = h * w
    add_map = add.dim() == 4
    if nhwc:
        bp, bc = _NHWC_TILE
        grid = (n, k["triton"].cdiv(hw, bp), k["triton"].cdiv(c, bc))
        k["affine_nhwc"][grid](x, s, add, out, c, hw, ADD_MAP=add_map, BLOCK_P=bp, BLOCK_C=bc)
    else:
        block = min(_BLOCK_HW_ROW, max(16, k["triton"].next_power_of_2(hw)))  # 7x7 rows: 64 lanes, not 1024
        grid = (n * c, k["triton"].cdiv(hw, block))
        k["affine_nchw"][grid](x, s, add, out, hw, ADD_MAP=add_map, BLOCK=block)


def _channel_dot(g: torch.Tensor, u: torch.Tensor, nhwc: bool) -> torch.Tensor:
    """``sum_hw g * u`` as an (N, C) float32 tensor."""
    k = _kernels()
    n, c, h, w = u.shape
    out = torch.empty(n, c, device=u.device, dtype=torch.float32)
    hw = h * w
    (bp, bc), strides = (_NHWC_TILE, (c, 1)) if nhwc else (_NCHW_DOT_TILE, (1, hw))
    k["channel_dot"][(n, k["triton"].cdiv(c, bc))](g, u, out, c, hw, *strides, BLOCK_P=bp, BLOCK_C=bc)
    return out


def _on_device(t: torch.Tensor):
    """Triton launches on the current CUDA device: make it ``t``'s for the launches."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


_KERNELS = None


def _linear_weight(w: torch.Tensor) -> torch.Tensor:
    return w.flatten(1).float()


class FusedScaleAdd(torch.autograd.Function):
    """``shortcut + U * sigmoid(W2 relu(W1 mean_hw(U) + b1) + b2)`` with the fused kernels above.

    Inputs: U and shortcut (N, C, H, W), both NCHW or both channels_last, same dtype; fc1/fc2 weights as stored by
    :class:`~senet.layers.squeeze_excite.SqueezeExcite` ((C/r, C, 1, 1) and (C, C/r, 1, 1)) and their biases (or
    None). The excitation runs in float32 whatever U's dtype; the output has U's dtype and memory format.
    """

    @staticmethod
    def forward(ctx, u, shortcut, w1, b1, w2, b2):
        nhwc = _layout(u) == "nhwc"
        with torch.autocast(u.device.type, enabled=False):
            z = u.mean((2, 3), dtype=torch.float32)  # accumulates in float32 without a float32 copy of U
            h_act = F.relu(F.linear(z, _linear_weight(w1), None if b1 is None else b1.float()))
            s = torch.sigmoid(F.linear(h_act, _linear_weight(w2), None if b2 is None else b2.float())).contiguous()
        out = torch.empty_like(u)
        with _on_device(u):
            _affine(u, s, shortcut, out, nhwc)
        ctx.save_for_backward(u, z, h_act, s, w1, w2)
        ctx.bias_dtypes = (None if b1 is None else b1.dtype, None if b2 is None else b2.dtype)
        ctx.nhwc = nhwc
        return out

    @staticmethod
    @once_differentiable  # the kernels have no backward of their own: double backward raises instead of lying
    def backward(ctx, grad):
        u, z, h_act, s, w1, w2 = ctx.saved_tensors
        need = ctx.needs_input_grad
        g_shortcut = grad if need[1] else None
        if not (need[0] or any(need[2:])):
            return None, g_shortcut, None, None, None, None
        hw = u.shape[2] * u.shape[3]
        grad = grad.contiguous(memory_format=torch.channels_last if ctx.nhwc else torch.contiguous_format)
        with _on_device(u):
            g_s = _channel_dot(grad, u, ctx.nhwc)
        with torch.autocast(u.device.type, enabled=False):
            # The excitation's backward, written out: s = sigmoid(a2), a2 = W2 h + b2, h = relu(a1), a1 = W1 z + b1.
            g_a2 = g_s * s * (1.0 - s)
            g_a1 = (g_a2 @ _linear_weight(w2)) * (h_act > 0)
            g_z = ((g_a1 @ _linear_weight(w1)) * (1.0 / hw)).contiguous()
        g_u = None
        if need[0]:
            g_u = torch.empty_like(u)
            with _on_device(u):
                _affine(grad, s, g_z, g_u, ctx.nhwc)
        b1_dtype, b2_dtype = ctx.bias_dtypes
        g_w1 = (g_a1.t() @ z).view(w1.shape).to(w1.dtype) if need[2] else None
        g_b1 = g_a1.sum(0).to(b1_dtype) if need[3] else None
        g_w2 = (g_a2.t() @ h_act).view(w2.shape).to(w2.dtype) if need[4] else None
        g_b2 = g_a2.sum(0).to(b2_dtype) if need[5] else None
        return g_u, g_shortcut, g_w1, g_b1, g_w2, g_b2
