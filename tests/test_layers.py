"""The SE block against the paper's definition, torchvision's implementation, and its properties."""

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from senet import ECA, ChannelSpatialSE, EffectiveSE, GatherExcite, SpatialSE, SqueezeExcite, create_attn
from senet.errors import ConfigError

FAST = settings(max_examples=25, deadline=None)


def _shapes():
    return st.tuples(st.integers(1, 3), st.sampled_from([4, 8, 16, 32]), st.integers(1, 7), st.integers(1, 7))


def test_matches_torchvision_squeeze_excitation():
    torch.manual_seed(1)
    c, r = 64, 16
    ours = SqueezeExcite(c, r, squeeze="avg", gate="sigmoid", bias=True)
    ref = torchvision.ops.SqueezeExcitation(c, c // r)
    ours.load_state_dict(ref.state_dict())  # same key names: fc1.*, fc2.*
    x = torch.randn(4, c, 9, 7)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)


def test_matches_the_paper_equations_written_out():
    torch.manual_seed(2)
    se = SqueezeExcite(32, 4, bias=True)
    x = torch.randn(2, 32, 5, 5)
    z = x.mean((2, 3))  # squeeze
    w1, b1 = se.fc1.weight.view(8, 32), se.fc1.bias
    w2, b2 = se.fc2.weight.view(32, 8), se.fc2.bias
    s = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)  # excitation
    torch.testing.assert_close(se(x), x * s[:, :, None, None])  # scale


@FAST
@given(shape=_shapes(), squeeze=st.sampled_from(["avg", "max", "none"]), gate=st.sampled_from(["sigmoid", "tanh", "relu", "hard_sigmoid"]), bias=st.booleans())
def test_output_shape_equals_input_shape(shape, squeeze, gate, bias):
    se = SqueezeExcite(shape[1], 2, squeeze=squeeze, gate=gate, bias=bias)
    assert se(torch.randn(shape)).shape == torch.Size(shape)


@FAST
@given(shape=_shapes(), squeeze=st.sampled_from(["avg", "max", "none"]), seed=st.integers(0, 2**16))
def test_sigmoid_gate_in_open_unit_interval_so_output_never_grows(shape, squeeze, seed):
    torch.manual_seed(seed)
    se = SqueezeExcite(shape[1], 2, squeeze=squeeze)
    x = torch.randn(shape)
    s = se.excitation(x)
    assert torch.all((s > 0) & (s < 1))
    assert torch.all(se(x).abs() <= x.abs())


@FAST
@given(shape=_shapes(), squeeze=st.sampled_from(["avg", "max", "none"]))
def test_zeroed_fc2_gives_exactly_half(shape, squeeze):
    se = SqueezeExcite(shape[1], 2, squeeze=squeeze)
    nn.init.zeros_(se.fc2.weight)
    nn.init.zeros_(se.fc2.bias)
    x = torch.randn(shape)
    assert torch.equal(se(x), 0.5 * x)


@FAST
@given(shape=_shapes().filter(lambda s: s[2] * s[3] > 1), seed=st.integers(0, 2**16))
def test_max_squeeze_differs_from_avg_on_non_constant_input(shape, seed):
    torch.manual_seed(seed)
    # delta = identity here: with a ReLU a random W1 can zero every hidden unit and hide the squeeze entirely.
    avg = SqueezeExcite(shape[1], 2, squeeze="avg", act_layer=nn.Identity)
    mx = SqueezeExcite(shape[1], 2, squeeze="max", act_layer=nn.Identity)
    mx.load_state_dict(avg.state_dict())
    x = torch.randn(shape)
    assert not torch.allclose(avg.excitation(x), mx.excitation(x))


@FAST
@given(shape=_shapes(), squeeze=st.sampled_from(["avg", "max", "none"]), seed=st.integers(0, 2**16))
def test_channels_last_equals_contiguous(shape, squeeze, seed):
    torch.manual_seed(seed)
    se = SqueezeExcite(shape[1], 2, squeeze=squeeze)
    x = torch.randn(shape)
    torch.testing.assert_close(se(x.to(memory_format=torch.channels_last)), se(x), atol=1e-6, rtol=1e-5)


def test_constant_input_makes_avg_and_max_squeeze_agree():
    avg, mx = SqueezeExcite(8, 2), SqueezeExcite(8, 2, squeeze="max")
    mx.load_state_dict(avg.state_dict())
    x = torch.randn(2, 8, 1, 1).expand(2, 8, 5, 5).contiguous()
    torch.testing.assert_close(avg(x), mx(x))


def test_no_squeeze_is_per_position():
    se = SqueezeExcite(8, 2, squeeze="none")
    x = torch.randn(1, 8, 4, 4)
    s = se.excitation(x)
    assert s.shape == x.shape
    # each position's gate depends on that position only
    x2 = x.clone()
    x2[..., 0, 0] += 5
    s2 = se.excitation(x2)
    torch.testing.assert_close(s2[..., 1:, :], s[..., 1:, :])


def test_gates_follow_the_table_12_names():
    x = torch.randn(2, 8, 3, 3)
    for gate, fn in [("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("relu", torch.relu)]:
        se = SqueezeExcite(8, 2, gate=gate)
        pre = se.fc2(se.act(se.fc1(x.mean((2, 3), keepdim=True))))
        torch.testing.assert_close(se(x), x * fn(pre))


def test_no_bias_option_removes_biases_and_rd_channels_overrides():
    se = SqueezeExcite(64, 16, bias=False)
    assert se.fc1.bias is None and se.fc2.bias is None
    assert sum(p.numel() for p in se.parameters()) == 2 * 64 * 4  # Eq. 5: 2 C^2 / r
    assert SqueezeExcite(64, rd_channels=10).fc1.out_channels == 10


def test_gate_hook_reads_the_excitation():
    se = SqueezeExcite(16, 4)
    seen = []
    se.gate.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(3, 16, 4, 4)
    se(x)
    torch.testing.assert_close(seen[0], se.excitation(x))


def test_autocast_keeps_gate_in_float32_and_output_in_input_dtype():
    se = SqueezeExcite(16, 4)
    seen = []
    se.gate.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randn(2, 16, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = se(x.to(torch.bfloat16))
    assert seen == [torch.float32]
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), se(x), atol=0.05, rtol=0.05)


def test_gradients_reach_input_and_both_fcs():
    se = SqueezeExcite(8, 2)
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    se(x).sum().backward()
    assert x.grad is not None and all(p.grad is not None and p.grad.abs().sum() > 0 for p in se.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 8, "reduction": 16}, "larger than channels"),
        ({"channels": 8, "reduction": 0.5}, ">= 1"),
        ({"channels": 8, "reduction": 2, "squeeze": "median"}, "unknown squeeze"),
        ({"channels": 8, "reduction": 2, "gate": "softmax"}, "unknown gate"),
        ({"channels": 0}, "positive"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SqueezeExcite(**kwargs)


def test_wrong_channel_count_names_expected_and_received():
    with pytest.raises(ValueError, match=r"expected an \(N, 16, H, W\) input, got shape \(2, 8, 4, 4\)"):
        SqueezeExcite(16, 4)(torch.randn(2, 8, 4, 4))


# --- variants ---------------------------------------------------------------------------------------------------

VARIANTS = [
    ("se", SqueezeExcite, {}),
    ("sse", SpatialSE, {}),
    ("scse", ChannelSpatialSE, {"reduction": 4}),
    ("eca", ECA, {}),
    ("ese", EffectiveSE, {}),
    ("ge", GatherExcite, {}),
]


@pytest.mark.parametrize("name, cls, kwargs", VARIANTS)
def test_factory_builds_each_variant_with_a_gate(name, cls, kwargs):
    m = create_attn(name, 32, **kwargs)
    assert isinstance(m, cls)
    x = torch.randn(2, 32, 6, 6, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.sum().backward()
    assert x.grad is not None
    assert any(n.endswith("gate") for n, _ in m.named_modules())


def test_factory_passes_callables_and_none_and_rejects_foreign_options():
    assert create_attn(None, 8) is None and create_attn("none", 8) is None
    assert isinstance(create_attn(lambda c: nn.Identity(), 8), nn.Identity)
    with pytest.raises(ValueError, match="ECA does not take option.*reduction"):
        create_attn("eca", 8, reduction=4)
    with pytest.raises(ValueError, match="did you mean"):
        create_attn("sec", 8)


def test_spatial_se_weights_positions_not_channels():
    m = SpatialSE(4)
    x = torch.randn(1, 4, 3, 3)
    q = m.gate(m.conv(x))
    torch.testing.assert_close(m(x), x * q)
    assert q.shape == (1, 1, 3, 3)


def test_scse_add_is_sum_of_cse_and_sse():
    m = ChannelSpatialSE(8, 2)
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(m(x), m.cse(x) + m.sse(x))


def test_eca_kernel_size_rule_and_no_reduction():
    assert ECA(64).kernel_size == 3 and ECA(256).kernel_size == 5 and ECA(512).kernel_size == 5
    assert sum(p.numel() for p in ECA(256).parameters()) == 5
    with pytest.raises(ValueError, match="odd"):
        ECA(64, kernel_size=4)


def test_eca_is_a_channel_convolution_of_the_pooled_vector():
    m = ECA(16, kernel_size=3)
    x = torch.randn(2, 16, 5, 5)
    z = x.mean((2, 3))
    w = m.conv.weight.view(3)
    zp = torch.nn.functional.pad(z, (1, 1))
    y = w[0] * zp[:, :-2] + w[1] * zp[:, 1:-1] + w[2] * zp[:, 2:]
    torch.testing.assert_close(m(x), x * torch.sigmoid(y)[:, :, None, None])


def test_effective_se_single_fc_with_hard_sigmoid():
    m = EffectiveSE(8)
    x = torch.randn(2, 8, 3, 3)
    s = torch.nn.functional.hardsigmoid(m.fc(x.mean((2, 3), keepdim=True)))
    torch.testing.assert_close(m(x), x * s)


def test_gather_excite_global_is_parameter_free_and_local_extent_varies_spatially():
    g = GatherExcite(8)
    assert sum(p.numel() for p in g.parameters()) == 0
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(g(x), x * torch.sigmoid(x.mean((2, 3), keepdim=True)))
    local = GatherExcite(8, extent=3)
    gate = local(x) / x
    assert not torch.allclose(gate[..., 0, 0], gate[..., 5, 5])


@pytest.mark.parametrize("name, cls, kwargs", VARIANTS)
def test_float64_input_keeps_float64_gate_and_output(name, cls, kwargs):
    # The output was float64 even with a float32 gate (cast back for the scale); the gate's dtype tells them apart.
    m = create_attn(name, 32, **kwargs).double()
    seen = []
    for n, sub in m.named_modules():
        if n.endswith("gate"):
            sub.register_forward_hook(lambda mod, i, o: seen.append(o.dtype))
    y = m(torch.randn(2, 32, 5, 5, dtype=torch.float64))
    assert y.dtype == torch.float64
    assert seen and all(d == torch.float64 for d in seen)


def test_forward_is_squeeze_excite_scale_and_fx_records_it():
    """The reference path as a graph: the squeeze, two matrix products (W1, W2), act, gate, product."""
    se = SqueezeExcite(8, 2)
    graph = torch.fx.symbolic_trace(se).graph
    assert [n.target for n in graph.nodes if n.op == "call_module"] == ["act", "gate"]
    assert [str(n.target) for n in graph.nodes if n.op == "get_attr"] == ["fc1.weight", "fc1.bias", "fc2.weight",
                                                                         "fc2.bias"]
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(torch.fx.GraphModule(se, graph)(x), se(x))
    z = x.mean((2, 3))
    s = torch.sigmoid(torch.relu(z @ se.fc1.weight[:, :, 0, 0].T + se.fc1.bias) @ se.fc2.weight[:, :, 0, 0].T
                      + se.fc2.bias)
    torch.testing.assert_close(se(x), x * s[:, :, None, None])
    with pytest.raises(ConfigError, match=r"expected an \(N, 8, H, W\) input, got shape \(2, 7, 3, 3\)"):
        torch.fx.GraphModule(se, graph)(torch.randn(2, 7, 3, 3))  # the traced check still runs
