"""Fast paths give the reference results: the SE's FCs as F.linear, the fused SE-ResNet tail, torch.compile.

No timing here (benchmarks/ measures speed); every test compares a fast path with a slow, obviously right one.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import senet
from senet.layers.squeeze_excite import PointwiseConv2d, SqueezeExcite
from senet.models.blocks import scale_and_add

FORMATS = [torch.contiguous_format, torch.channels_last]


def reference_se(se: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    """The paper's formula with the FCs as real 1x1 convolutions (no fast path)."""
    z = x.amax((2, 3), keepdim=True) if se.squeeze == "max" else x.mean((2, 3), keepdim=True)
    h = se.act(F.conv2d(z, se.fc1.weight, se.fc1.bias))
    s = se.gate(F.conv2d(h, se.fc2.weight, se.fc2.bias))
    return x * s


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fmt", FORMATS)
def test_pointwise_linear_path_equals_convolution(bias, fmt):
    conv = PointwiseConv2d(12, 5, bias=bias)
    z = torch.randn(7, 12, 1, 1).contiguous(memory_format=fmt)
    out = conv(z)
    assert out.shape == (7, 5, 1, 1)
    torch.testing.assert_close(out, F.conv2d(z, conv.weight, conv.bias), rtol=1e-5, atol=1e-6)


def test_pointwise_full_resolution_input_stays_a_convolution():
    conv = PointwiseConv2d(6, 4)
    x = torch.randn(2, 6, 5, 3)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias))
    assert isinstance(conv, nn.Conv2d) and conv.weight.shape == (4, 6, 1, 1)


def test_pointwise_keeps_module_hooks_and_state_dict_keys():
    se = SqueezeExcite(16, 4)
    calls = []
    se.fc1.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    se(torch.randn(3, 16, 4, 4))
    assert calls == [torch.Size([3, 4, 1, 1])]
    assert set(se.state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


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


def test_fused_tail_equals_unfused_and_passes_gradcheck():
    se = SqueezeExcite(8, 2).double()
    out = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    shortcut = torch.randn(2, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    fused = scale_and_add(se, out, shortcut, fused=True)
    torch.testing.assert_close(fused, se(out) + shortcut)
    assert torch.autograd.gradcheck(lambda u, r: torch.relu(scale_and_add(se, u, r, fused=True)), (out, shortcut))


@pytest.mark.parametrize("fmt", FORMATS)
def test_se_resnet20_fused_tail_matches_unfused_in_train_mode(fmt):
    torch.manual_seed(0)
    fused = senet.create_model("se_resnet20", in_chans=1, num_classes=10, fused_tail=True)
    plain = senet.create_model("se_resnet20", in_chans=1, num_classes=10, fused_tail=False)
    plain.load_state_dict(fused.state_dict())
    fused, plain = fused.to(memory_format=fmt), plain.to(memory_format=fmt)
    x = torch.randn(4, 1, 28, 28).contiguous(memory_format=fmt)
    y = torch.tensor([0, 3, 5, 9])
    losses, grads = [], []
    for model in (fused, plain):
        loss = F.cross_entropy(model(x), y)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    torch.testing.assert_close(losses[0], losses[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


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


def test_dense_squeeze_gradient_is_used_for_bf16_channels_last_cpu_only():
    from senet.layers.squeeze_excite import _broadcast_add_is_slow

    x = torch.randn(2, 8, 4, 4)
    assert not _broadcast_add_is_slow(x) and not _broadcast_add_is_slow(x.to(memory_format=torch.channels_last))
    assert not _broadcast_add_is_slow(x.bfloat16())
    assert _broadcast_add_is_slow(x.bfloat16().to(memory_format=torch.channels_last))
    assert not _broadcast_add_is_slow(torch.randn(2, 8, 1, 1).bfloat16().to(memory_format=torch.channels_last))


def test_dense_squeeze_gradient_passes_gradcheck():
    from senet.layers.squeeze_excite import _MeanWithDenseGrad

    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(_MeanWithDenseGrad.apply, (x,))
    _MeanWithDenseGrad.apply(x).sum().backward()
    assert x.grad.is_contiguous(memory_format=torch.channels_last) and x.grad.stride()[2] != 0  # dense, not a view


def test_bf16_channels_last_training_step_is_bit_identical_with_the_dense_squeeze_gradient(monkeypatch):
    """The dense gradient changes the layout autograd adds, never a value: same loss and gradients to the bit."""
    from senet.layers import squeeze_excite as se_module

    torch.manual_seed(0)
    model = senet.create_model("se_resnet20", in_chans=1).to(memory_format=torch.channels_last)
    x = torch.randn(8, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,))

    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    calls = []
    real = se_module._MeanWithDenseGrad.apply
    monkeypatch.setattr(se_module._MeanWithDenseGrad, "apply", lambda t: calls.append(1) or real(t))
    loss_dense, grads_dense = step()
    assert len(calls) == 9  # every SE block of the model took the dense path
    monkeypatch.setattr(se_module, "_broadcast_add_is_slow", lambda t: False)
    loss_view, grads_view = step()
    assert torch.equal(loss_dense, loss_view)
    assert all(torch.equal(a, b) for a, b in zip(grads_dense, grads_view))


def _module_path(monkeypatch):
    """Force SqueezeExcite.excitation through the four submodule calls (the reference for the functional path)."""
    monkeypatch.setattr(SqueezeExcite, "_is_plain", lambda self: False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_functional_excitation_is_bit_identical_to_the_module_calls(monkeypatch, fmt):
    torch.manual_seed(0)
    model = senet.create_model("se_resnet20", in_chans=1).to(memory_format=fmt)
    x = torch.randn(4, 1, 16, 16).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (4,))
    se = next(m for m in model.modules() if isinstance(m, SqueezeExcite))
    assert se._is_plain()
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def step():
        model.load_state_dict(start)  # the BN running statistics are back where they were
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            logits = model.eval()(x)
        model.train()
        return loss.detach(), logits, [p.grad.clone() for p in model.parameters()]

    fast = step()
    _module_path(monkeypatch)
    slow = step()
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])
    assert all(torch.equal(a, b) for a, b in zip(fast[2], slow[2]))


def test_functional_excitation_under_bf16_autocast_matches_module_calls(monkeypatch):
    se = SqueezeExcite(16, 4)
    x = torch.randn(2, 16, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = se.excitation(x)
        _module_path(monkeypatch)
        slow = se.excitation(x)
    assert fast.dtype == slow.dtype == torch.float32
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("watch", ["fc1", "act", "fc2", "gate"])
def test_a_hook_on_any_submodule_sees_every_call(watch):
    se = SqueezeExcite(8, 2)
    seen = []
    getattr(se, watch).register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    se(torch.randn(3, 8, 4, 4))
    se.scale(torch.randn(3, 8, 4, 4), torch.randn(3, 8, 4, 4))
    assert len(seen) == 2 and not se._is_plain()


def test_a_global_module_hook_sees_the_gate():
    se = SqueezeExcite(8, 2)
    seen = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda mod, inp, out: seen.append(type(mod).__name__))
    try:
        assert not se._is_plain()
        se(torch.randn(2, 8, 3, 3))
    finally:
        handle.remove()
    assert {"PointwiseConv2d", "ReLU", "Sigmoid", "SqueezeExcite"} <= set(seen)
    assert se._is_plain()


@pytest.mark.parametrize("change", ["gate", "act", "fc1", "squeeze"])
def test_replaced_submodules_take_the_module_path(change):
    se = SqueezeExcite(8, 2)
    if change == "gate":
        se.gate = nn.Hardsigmoid()
    elif change == "act":
        se.act = nn.GELU()
    elif change == "fc1":
        se.fc1 = nn.Conv2d(8, 4, 1)
    else:
        se = SqueezeExcite(8, 2, squeeze="none")
    assert not se._is_plain()
    x = torch.randn(2, 8, 3, 3)
    z = x if change == "squeeze" else x.mean((2, 3), keepdim=True)
    torch.testing.assert_close(se(x), x * se.gate(se.fc2(se.act(se.fc1(z)))))


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
