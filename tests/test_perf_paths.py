"""Faster paths give the reference results: the SE-ResNet tail rule (senet.layers.se_fast), torch.compile, and
the channels_last max-pool. The reference SE is the paper's formula written out with real 1x1 convolutions.

No timing here (benchmarks/ measures speed); every test compares a path with a slow, obviously right one.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import senet
from senet.layers import se_fast, se_triton
from senet.layers.squeeze_excite import SqueezeExcite

FORMATS = [torch.contiguous_format, torch.channels_last]


def reference_se(se: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    """The paper's formula with the FCs as real 1x1 convolutions."""
    z = x.amax((2, 3), keepdim=True) if se.squeeze == "max" else x.mean((2, 3), keepdim=True)
    h = se.act(F.conv2d(z, se.fc1.weight, se.fc1.bias))
    s = se.gate(F.conv2d(h, se.fc2.weight, se.fc2.bias))
    return x * s


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("squeeze", ["avg", "max"])
def test_se_forward_and_grads_match_reference(fmt, squeeze):
    se = SqueezeExcite(32, 4, squeeze=squeeze)
    x = torch.randn(3, 32, 6, 5).contiguous(memory_format=fmt).requires_grad_(True)
    out = se(x)
    assert out.is_contiguous(memory_format=fmt), "the SE must keep the input's memory format"
    ref_out = reference_se(se, x)
    torch.testing.assert_close(out, ref_out)
    grads = torch.autograd.grad(out.square().sum(), [x, *se.parameters()])
    ref_grads = torch.autograd.grad(ref_out.square().sum(), [x, *se.parameters()])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def test_se_gradcheck_float64():
    se = SqueezeExcite(8, 2).double()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(se, (x,))


def test_se_nosqueeze_still_matches_full_resolution_convolutions():
    se = SqueezeExcite(8, 2, squeeze="none")
    x = torch.randn(2, 8, 4, 4)
    s = torch.sigmoid(F.conv2d(torch.relu(F.conv2d(x, se.fc1.weight, se.fc1.bias)), se.fc2.weight, se.fc2.bias))
    torch.testing.assert_close(se(x), x * s)


def test_residual_tail_is_the_se_forward_plus_the_shortcut_and_hooks_see_every_call():
    se = SqueezeExcite(8, 2).double()
    seen = []
    for m in (se, se.fc1, se.act, se.fc2, se.gate):
        m.register_forward_hook(lambda mod, i, o: seen.append(type(mod).__name__))
    u = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    r = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    out = se_fast.residual_tail(se, u, r)
    assert seen == ["DescriptorFC", "ReLU", "DescriptorFC", "Sigmoid", "SqueezeExcite"]
    torch.testing.assert_close(out, reference_se(se, u) + r)
    assert torch.autograd.gradcheck(lambda a, b: torch.relu(se_fast.residual_tail(se, a, b)), (u, r))
    torch.testing.assert_close(se_fast.residual_tail(None, u, r), u + r)


def test_only_a_stock_block_qualifies_for_the_fused_kernel():
    assert se_fast.is_stock_se(SqueezeExcite(16, 4))
    assert not se_fast.is_stock_se(SqueezeExcite(16, 4, squeeze="max"))
    assert not se_fast.is_stock_se(SqueezeExcite(16, 4, gate="hard_sigmoid"))
    swapped = SqueezeExcite(16, 4)
    swapped.act = nn.GELU()
    assert not se_fast.is_stock_se(swapped)
    assert not se_fast.is_stock_se(senet.layers.EffectiveSE(16))


def test_the_fused_kernel_is_off_unless_enabled_and_never_reads_the_environment_on_import(monkeypatch):
    """Importing senet with SENET_SE_KERNEL=triton leaves the kernel off; only the explicit call reads it."""
    import subprocess
    import sys

    code = ("import senet; from senet.layers import se_triton; a = se_triton.enabled(); "
            "b = se_triton.enable_from_environment() if se_triton.available() else True; print(a, b)")
    env = {**__import__("os").environ, "SENET_SE_KERNEL": "triton"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_tracing_records_the_reference_even_when_the_kernel_is_enabled(monkeypatch):
    """fx sees the SE block's own modules, not the kernel's autograd function, whatever the switch says."""
    monkeypatch.setitem(se_triton._state, "enabled", True)
    model = senet.create_model("se_resnet8", in_chans=1).eval()
    graph = torch.fx.symbolic_trace(model)
    targets = {str(n.target) for n in graph.graph.nodes}
    assert "layer1.0.se.gate" in targets and not any("FusedScaleAdd" in t for t in targets)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
def test_compiled_se_matches_eager():
    se = SqueezeExcite(16, 4)
    x = torch.randn(2, 16, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    compiled = torch.compile(se)
    out_c = compiled(x)
    torch.testing.assert_close(out_c, se(x), rtol=1e-5, atol=1e-6)
    (gc,) = torch.autograd.grad(out_c.sum(), x)
    (ge,) = torch.autograd.grad(se(x).sum(), x)
    torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-6)


POOLS = [{"kernel_size": 3, "stride": 2, "padding": 1}, {"kernel_size": 3, "stride": 2, "ceil_mode": True},
         {"kernel_size": 3, "stride": 2}, {"kernel_size": 2, "stride": 2}]


@pytest.mark.parametrize("cfg", POOLS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
@pytest.mark.parametrize("data", ["relu-zeros", "integer-ties"])
def test_layout_max_pool_equals_nn_max_pool_in_inference(cfg, data):
    """Values equal to the bit, ties included (ReLU zeros and repeated integers), NCHW in and out."""
    from senet.models.common import MaxPool2d

    torch.manual_seed(0)
    x = torch.randn(2, 5, 15, 17)
    x = torch.relu(x) if data == "relu-zeros" else torch.randint(0, 3, x.shape).float()
    layouts = []
    stock = nn.MaxPool2d.forward

    def spy(self, t):
        layouts.append(t.is_contiguous(memory_format=torch.channels_last))
        return stock(self, t)

    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(nn.MaxPool2d, "forward", spy)
        out = MaxPool2d(**cfg)(x)
    assert layouts == [True]  # the stock kernel saw the channels_last copy
    assert out.is_contiguous() and torch.equal(out, nn.MaxPool2d(**cfg)(x))


def test_layout_max_pool_leaves_training_to_the_stock_kernel():
    from senet.models.common import MaxPool2d

    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    out = MaxPool2d(3, 2, padding=1)(x)
    assert type(out.grad_fn).__name__.startswith("MaxPool2DWithIndices")
    assert type(out.grad_fn.next_functions[0][0]).__name__ == "AccumulateGrad"  # no layout copy before the pool


def test_layout_max_pool_keeps_the_input_layout_and_the_stock_interface():
    from senet.models.common import MaxPool2d

    pool = MaxPool2d(3, 2, padding=1)
    assert repr(pool) == repr(nn.MaxPool2d(3, 2, padding=1)) and pool.state_dict() == {}
    x = torch.randn(1, 4, 9, 9).contiguous(memory_format=torch.channels_last)
    assert pool(x).is_contiguous(memory_format=torch.channels_last)
    out, idx = MaxPool2d(3, 2, padding=1, return_indices=True)(x.contiguous())
    ref, ref_idx = F.max_pool2d(x.contiguous(), 3, 2, 1, return_indices=True)
    assert torch.equal(out, ref) and torch.equal(idx, ref_idx)
    exported = torch.export.export(pool, (torch.randn(1, 4, 9, 9),))
    ops = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert ops and all("max_pool2d" in op for op in ops)  # export takes the stock path: no layout copies
