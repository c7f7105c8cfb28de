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
    from senet.layers import se_triton
    from senet.layers.squeeze_excite import SqueezeExcite
    device = "cuda" if "--cuda" in sys.argv else "cpu"
    torch.manual_seed(0)

    def run_tail(se, u, r, fused):
        se_triton.enable(fused)
        u, r = u.detach().clone().requires_grad_(), r.detach().clone().requires_grad_()
        se.zero_grad(set_to_none=True)
        out = se.scale(u, r)
        g = torch.randn_like(out)
        out.backward(g)
        return out.detach(), [u.grad, r.grad] + [p.grad for p in se.parameters()]

    for fmt in (torch.contiguous_format, torch.channels_last):
        for bias in (True, False):
            for shape in ((2, 8, 5, 7), (3, 40, 9, 9)):
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

    # The fused path really ran (a kernel, not the eager fallback), and a hook on the gate forces the eager path.
    se = SqueezeExcite(8, 2).to(device)
    u = torch.randn(2, 8, 4, 4, device=device, requires_grad=True)
    se_triton.enable(True)
    assert type(se.scale(u, torch.randn_like(u)).grad_fn).__name__ == "FusedScaleAddBackward"
    seen = []
    handle = se.gate.register_forward_hook(lambda m, i, o: seen.append(o))
    assert type(se.scale(u, torch.randn_like(u)).grad_fn).__name__ != "FusedScaleAddBackward" and len(seen) == 1
    handle.remove()
    u64 = u.detach().double().requires_grad_()
    assert type(se.double().scale(u64, torch.randn_like(u64)).grad_fn).__name__ != "FusedScaleAddBackward"

    # A whole SE-ResNet-8 training step: same loss and parameter gradients as the eager model.
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
    if os.environ.get(se_triton.ENV_VAR, "eager") != "triton":
        assert not before
    u = torch.randn(2, 4, 3, 3)
    assert not se_triton.applies(u, u)
    se_triton.enable(True)
    try:
        assert not se_triton.applies(u, u)  # CPU tensors never take the kernels outside the interpreter
    finally:
        se_triton.enable(before)
