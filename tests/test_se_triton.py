"""The opt-in fused SE tail (senet.layers.se_triton) against the eager block: values and every gradient.

Without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, on CPU tensors), which must be set
before Triton is imported, so the checks run in a child process. With a GPU, ``--cuda`` in the child runs them on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from senet.layers import se_triton

pytestmark = pytest.mark.skipif(not se_triton.available(), reason="Triton is not installed")

_CHILD = textwrap.dedent("""
    import sys, torch, torch.nn.functional as F, senet
    from senet.layers import se_fast, se_triton
    from senet.layers.squeeze_excite import SqueezeExcite
    device = "cuda" if "--cuda" in sys.argv else "cpu"
    torch.manual_seed(0)

    def run_tail(se, u, r, fused):
        se_triton.enable(fused)
        u, r = u.detach().clone().requires_grad_(), r.detach().clone().requires_grad_()
        se.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=u.dtype == torch.bfloat16):
            out = se_fast.residual_tail(se, u, r)
        g = torch.randn_like(out)
        out.backward(g)
        return out.detach(), [u.grad, r.grad] + [p.grad for p in se.parameters()]

    for fmt in (torch.contiguous_format, torch.channels_last):
        for bias in (True, False):
            big = [(8, 256, 56, 56), (16, 2048, 7, 7)] if device == "cuda" else []  # ResNet-50 shapes on a GPU
            for shape in [(2, 8, 5, 7), (3, 40, 9, 9), (2, 136, 7, 7), (1, 16, 56, 56)] + big:
                se = SqueezeExcite(shape[1], 4, bias=bias).to(device)
                u = torch.randn(shape, device=device).contiguous(memory_format=fmt)
                r = torch.randn(shape, device=device).contiguous(memory_format=fmt)
                torch.manual_seed(1); eager = run_tail(se, u, r, False)
                torch.manual_seed(1); fused = run_tail(se, u, r, True)
                assert fused[0].is_contiguous(memory_format=fmt), "output keeps the memory format"
                torch.testing.assert_close(fused[0], eager[0], rtol=1e-5, atol=1e-5)
                assert len(fused[1]) == len(eager[1]) == 2 + (4 if bias else 2)
                for a, b in zip(fused[1], eager[1]):
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    # bf16 maps under autocast (the fused excitation stays float32, the eager one runs bf16 products): close.
    for fmt in (torch.contiguous_format, torch.channels_last):
        se = SqueezeExcite(40, 4).to(device)
        u = torch.randn(3, 40, 9, 9, device=device).contiguous(memory_format=fmt)
        r = torch.randn(3, 40, 9, 9, device=device).contiguous(memory_format=fmt)
        torch.manual_seed(1); eager = run_tail(se, u.bfloat16(), r.bfloat16(), False)
        torch.manual_seed(1); fused = run_tail(se, u.bfloat16(), r.bfloat16(), True)
        assert fused[0].dtype == torch.bfloat16 and fused[0].is_contiguous(memory_format=fmt)
        torch.testing.assert_close(fused[0].float(), eager[0].float(), rtol=2e-2, atol=2e-2)
        for a, b in zip(fused[1], eager[1]):
            assert a.dtype == b.dtype
            torch.testing.assert_close(a.float(), b.float(), rtol=5e-2, atol=5e-2)

    calls = []
    real_apply = se_triton.FusedScaleAdd.apply
    se_triton.FusedScaleAdd.apply = lambda *a: calls.append(1) or real_apply(*a)

    # Frozen SE weights and a U without gradient: only what is asked for is computed.
    se = SqueezeExcite(8, 2).to(device).requires_grad_(False)
    u = torch.randn(2, 8, 4, 4, device=device)
    r = torch.randn(2, 8, 4, 4, device=device, requires_grad=True)
    se_triton.enable(True)
    se_fast.residual_tail(se, u, r).sum().backward()
    assert torch.equal(r.grad, torch.ones_like(r)) and all(p.grad is None for p in se.parameters())
    se.requires_grad_(True)
    se_fast.residual_tail(se, u, r).sum().backward()
    assert all(p.grad is not None for p in se.parameters()) and len(calls) == 2

    # The fused path really ran (a kernel, not the eager fallback); a non-stock block or float64 stays eager.
    se = SqueezeExcite(8, 2).to(device)
    u = torch.randn(2, 8, 4, 4, device=device, requires_grad=True)
    se_triton.enable(True)
    tail = lambda block, t: se_fast.residual_tail(block, t, torch.randn_like(t)).grad_fn
    assert type(tail(se, u)).__name__ == "FusedScaleAddBackward"
    assert type(tail(SqueezeExcite(8, 2, squeeze="max").to(device), u)).__name__ != "FusedScaleAddBackward"
    u64 = u.detach().double().requires_grad_()
    assert type(tail(se.double(), u64)).__name__ != "FusedScaleAddBackward"

    # A whole SE-ResNet-8 training step: same loss and parameter gradients as the eager model.
    calls.clear()
    model = senet.create_model("se_resnet8", in_chans=1).to(device)
    x = torch.randn(4, 1, 12, 12, device=device)
    y = torch.tensor([0, 3, 5, 9], device=device)
    grads = {}
    for fused in (False, True):
        se_triton.enable(fused)
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        grads[fused] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
    assert len(calls) == 3  # the fused step ran its three SE blocks through the kernels, the eager step none
    torch.testing.assert_close(grads[True][0], grads[False][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[True][1], grads[False][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
    print("fused SE tail OK on", device)
""")


def _child(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "0" if "--cuda" in args else "1", "SENET_SE_KERNEL": "eager"}
    return subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=600,
                          env=env, check=False)


def test_fused_tail_matches_eager_in_the_interpreter():
    proc = _child()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fused SE tail OK on cpu" in proc.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fused_tail_matches_eager_on_the_gpu():
    proc = _child("--cuda")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_off_by_default_and_off_for_cpu_tensors(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    before = se_triton.enabled()
    assert not before  # nothing turns it on at import, whatever SENET_SE_KERNEL says
    u = torch.randn(2, 4, 3, 3)
    assert not se_triton.applies(u, u)
    se_triton.enable(True)
    try:
        assert not se_triton.applies(u, u)  # CPU tensors never take the kernels outside the interpreter
    finally:
        se_triton.enable(before)


def _compile_for_sm90(fn, signature: dict[str, str], constexprs: dict[str, object]):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = fn.arg_names
    sig = {name: ("constexpr" if name in constexprs else signature[name]) for name in names}
    consts = {(names.index(name),): value for name, value in constexprs.items()}
    return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", 90, 32))


def test_every_kernel_variant_compiles_for_an_h100(tmp_path, monkeypatch):
    """Ahead-of-time compilation to sm_90 cubins (Triton's bundled ptxas; no GPU needed): what the interpreter
    cannot check - that the kernels lower through TTIR/TTGIR/PTX for a real GPU - for bf16 and fp32 maps."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("kernels are interpreted in this process")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    import triton

    if tuple(int(part) for part in triton.__version__.split(".")[:2]) < (3, 3):
        pytest.skip(f"the ahead-of-time API used here is Triton >= 3.3's (this is {triton.__version__})")
    k = se_triton._kernels()
    bp, bc = se_triton._NHWC_TILE
    dot_p, dot_c = se_triton._NCHW_DOT_TILE
    for dt in ("*bf16", "*fp32"):
        for add_map in (True, False):
            add = dt if add_map else "*fp32"
            compiled = [
                _compile_for_sm90(k["affine_nchw"], {"x_ptr": dt, "s_ptr": "*fp32", "add_ptr": add, "out_ptr": dt,
                                                     "HW": "i32"}, {"ADD_MAP": add_map, "BLOCK": se_triton._BLOCK_HW_ROW}),
                _compile_for_sm90(k["affine_nhwc"], {"x_ptr": dt, "s_ptr": "*fp32", "add_ptr": add, "out_ptr": dt,
                                                     "C": "i32", "HW": "i32"},
                                  {"ADD_MAP": add_map, "BLOCK_P": bp, "BLOCK_C": bc}),
            ]
            assert all(c.asm["cubin"] for c in compiled)
        for (tile_p, tile_c), unit_stride in (((dot_p, dot_c), "stride_p"), ((bp, bc), "stride_c")):
            # The JIT specialises an int argument equal to 1 into a constant: compile each layout that way.
            sig = {"g_ptr": dt, "u_ptr": dt, "out_ptr": "*fp32", "C": "i32", "HW": "i32", "stride_p": "i32",
                   "stride_c": "i32"}
            consts = {"BLOCK_P": tile_p, "BLOCK_C": tile_c, unit_stride: 1}
            c = _compile_for_sm90(k["channel_dot"], sig, consts)
            assert c.asm["cubin"] and "ld.global" in c.asm["ptx"]
