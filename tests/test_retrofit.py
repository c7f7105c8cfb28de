"""add_se: SE retrofitted into torchvision ResNets/VGGs and plain senet ResNets."""

from __future__ import annotations

import pickle

import pytest
import torch
import torchvision
from torch import nn

from senet import (
    ConfigError,
    SqueezeExcite,
    add_se,
    create_model,
    load_model,
    model_complexity,
    named_se_blocks,
    save_model,
)
from senet.models.retrofit import ActivationThenAttention


def test_torchvision_resnet50_equals_registered_se_resnet50():
    tv = add_se(torchvision.models.resnet50())
    ours = create_model("se_resnet50", stride_in_1x1=False)
    ours.load_state_dict(tv.state_dict())  # strict: identical names and shapes
    tv.eval(), ours.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tv(x), ours(x), rtol=0, atol=0)


def test_retrofitted_unit_is_se_then_add():
    tv = add_se(torchvision.models.resnet18(num_classes=3), reduction=4, se_bias=False).eval()
    unit = tv.layer2[0]
    assert isinstance(unit.se, SqueezeExcite) and unit.se.fc1.bias is None and unit.se.rd_channels == 32
    x = torch.randn(1, 64, 8, 8)
    out = unit.bn2(unit.conv2(unit.relu(unit.bn1(unit.conv1(x)))))
    expected = torch.relu(unit.se(out) + unit.downsample(x))
    with torch.no_grad():
        torch.testing.assert_close(unit(x), expected)
        unit.se = None  # without its SE the unit is torchvision's again
        torch.testing.assert_close(unit(x), torch.relu(out + unit.downsample(x)))


def test_existing_weights_keep_their_names_and_the_model_pickles():
    tv = torchvision.models.resnet18(num_classes=3)
    before = set(tv.state_dict())
    add_se(tv, se_stages=[4])
    after = set(tv.state_dict())
    assert before <= after and {k.split(".se.")[0] for k in after - before} == {"layer3.0", "layer3.1"}
    assert list(named_se_blocks(tv)) == ["SE_4_1", "SE_4_2"]
    clone = pickle.loads(pickle.dumps(tv))
    x = torch.randn(1, 3, 32, 32)
    tv.eval(), clone.eval()
    torch.testing.assert_close(clone(x), tv(x))


def test_vgg16_bn_gets_se_after_every_conv_relu():
    with torch.device("meta"):
        vgg = torchvision.models.vgg16_bn()
    plain = model_complexity(vgg)
    add_se(vgg)
    se = model_complexity(vgg)
    blocks = named_se_blocks(vgg)
    assert len(blocks) == 13 and next(iter(blocks)) == "features.2.se"
    assert round(plain["macs"] / 1e9, 2) == 15.47  # Table 2: VGG-16 15.47 GFLOPs
    # + SE FCs and one op per element for squeeze and scale (see senet.complexity); the paper prints 15.48
    assert 0.02 < (se["macs"] - plain["macs"]) / 1e9 < 0.03
    assert se["params"] - plain["params"] == se["se_params"] > 0


def test_small_vgg_without_se_is_unchanged():
    features = torchvision.models.vgg.make_layers([8, "M", 16], batch_norm=False)
    with torch.device("meta"):
        vgg = torchvision.models.VGG(nn.Sequential(), num_classes=5, init_weights=False)
    vgg.features, vgg.avgpool, vgg.classifier = features, nn.AdaptiveAvgPool2d(1), nn.Linear(16, 5)
    vgg.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        reference = vgg(x)
        add_se(vgg, reduction=2)
        assert isinstance(vgg.features[1], ActivationThenAttention) and vgg.features[4].se.channels == 16
        assert not torch.allclose(vgg(x), reference)
        for m in vgg.features:
            if isinstance(m, ActivationThenAttention):
                m.se = None
        torch.testing.assert_close(vgg(x), reference)


def test_plain_senet_resnet_roundtrips_through_save(tmp_path):
    model = add_se(create_model("resnet20"), reduction=4, se_stages=(3, 4))
    kwargs = {"attn_layer": "se", "reduction": 4, "se_stages": [3, 4]}
    assert model.senet_config == {"name": "resnet20", "kwargs": kwargs}
    assert model.layer1[0].se is None and model.layer2[0].se.rd_channels == 8
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize(
    "model, kwargs, message",
    [
        (nn.Sequential(nn.Conv2d(3, 8, 3)), {}, "does not support Sequential; it supports torchvision ResNet"),
        ("tv_resnet18", {"attn_layer": "eca", "reduction": 4}, r"ECA does not take option\(s\) reduction"),
        ("tv_resnet18", {"se_stages": [6]}, "stages are numbered 2..5"),
        ("tv_resnet18", {"attn_layer": None}, "needs an attention layer"),
        ("se_resnet20", {}, "already has attention blocks"),
        ("resnet20_post", {}, "standard position"),
    ],
)
def test_bad_requests_raise_config_error(model, kwargs, message):
    if model == "tv_resnet18":
        with torch.device("meta"):
            model = torchvision.models.resnet18()
    elif model == "resnet20_post":
        model = create_model("resnet20")
        for m in model.modules():
            if hasattr(m, "se_position"):
                m.se_position = "post"
    elif isinstance(model, str):
        model = create_model(model)
    with pytest.raises(ConfigError, match=message):
        add_se(model, **kwargs)


def test_add_se_twice_raises():
    with torch.device("meta"):
        model = add_se(torchvision.models.resnet18())
    with pytest.raises(ConfigError, match="already has SE blocks"):
        add_se(model)


@pytest.mark.parametrize("name", ["resnet164", "resnet20"])
def test_se_width_is_the_unit_output_width_also_for_preactivation_bottlenecks(name):
    # A pre-activation bottleneck's bn3 normalises conv3's *input* (width channels); the SE must see conv3's output.
    model = add_se(create_model(name, num_classes=10)).eval()
    units = [m for m in model.modules() if getattr(m, "se", None) is not None]
    assert units
    for unit in units:
        last_conv = unit.conv3 if hasattr(unit, "conv3") else unit.conv2
        assert unit.se.channels == last_conv.out_channels
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def _se_below_256_channels(channels: int) -> nn.Module:
    if channels >= 256:
        raise ConfigError(f"no SE for C={channels}")
    return SqueezeExcite(channels, 4)


@pytest.mark.parametrize("make", [lambda: create_model("resnet18"), lambda: torchvision.models.resnet18()])
def test_a_refused_se_block_leaves_the_model_untouched(make):
    with torch.device("meta"):
        model = make()  # stages of 64, 128, 256, 512 channels: the refused 256-channel units come after others
    with pytest.raises(ConfigError, match="no SE for C=256"):
        add_se(model, attn_layer=_se_below_256_channels)
    assert not any(isinstance(m, SqueezeExcite) for m in model.modules())
    assert not any(type(m).__name__.startswith("SE") for m in model.modules())
    with pytest.raises(ConfigError, match="C=16"):  # a value error surfaces with the real width
        add_se(create_model("resnet20"), reduction=32)
    assert add_se(model, reduction=8) is model  # still a plain model, so the retry works


# ---------------------------------------------------------------------------------------------- identity init
def _trained_like(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, as after training (the defaults would hide a wrong scale)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return model.eval()


@pytest.mark.parametrize("make,size", [
    (lambda: torchvision.models.resnet18(num_classes=10), 64),
    (lambda: torchvision.models.resnet50(num_classes=10), 32),
    (lambda: torchvision.models.vgg11_bn(num_classes=10), 32),
    (lambda: create_model("resnet20", num_classes=10), 32),
    (lambda: create_model("resnet20", num_classes=10, preact=True), 32),
], ids=["tv_resnet18", "tv_resnet50", "tv_vgg11_bn", "resnet20", "preact_resnet20"])
def test_identity_init_keeps_the_network_function(make, size):
    """SE added with init="identity" leaves the logits as they were (x~ = sigma(0) * U / sigma(0) = U); the
    default random init moves them."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    for init, changes in (("identity", False), ("random", True)):
        torch.manual_seed(1)
        model = _trained_like(make())
        with torch.no_grad():
            before = model(x)
            add_se(model, init=init)
            after = model.eval()(x)
        moved = float((after - before).abs().max())
        assert (moved > 1e-2 * float(before.abs().max())) if changes else moved < 1e-5, (init, moved)


def test_identity_init_gates_sit_at_one_half_and_still_learn():
    model = _trained_like(create_model("resnet20", num_classes=10))
    add_se(model, init="identity")
    se = model.layer1[0].se
    assert torch.count_nonzero(se.fc2.weight) == 0 and torch.count_nonzero(se.fc1.weight) > 0
    x = torch.randn(2, 3, 32, 32)
    gates = []
    hook = se.gate.register_forward_hook(lambda m, i, o: gates.append(o))
    model.train()(x).sum().backward()
    hook.remove()
    assert torch.allclose(gates[0], torch.full_like(gates[0], 0.5))  # sigmoid(0): the steepest point
    assert se.fc2.weight.grad.abs().sum() > 0  # W2 learns from the first step


def test_identity_init_refuses_a_gate_that_is_zero_at_zero():
    with pytest.raises(ConfigError, match="sigma\\(0\\) > 0"):
        add_se(create_model("resnet20"), gate="relu", init="identity")
    with pytest.raises(ConfigError, match="unknown init"):
        add_se(create_model("resnet20"), init="zeros")
