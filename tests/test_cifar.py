"""CIFAR-size residual networks: every name, 32x32 and 28x28 inputs, any in_chans, sizes from their papers."""

from __future__ import annotations

import pytest
import torch

from senet import ConfigError, create_model, list_models, model_complexity

CIFAR = ["resnet8", "resnet14", "resnet20", "resnet32", "resnet56", "resnet110", "resnet164", "wrn16_8"]
ALL = CIFAR + [f"se_{n}" for n in CIFAR]


def test_registered_without_clashing_with_imagenet_names():
    names = list_models()
    assert set(ALL) <= set(names)
    assert len(names) == len(set(names))
    assert create_model("resnet50").default_input_size == (3, 224, 224)


DEEP = ["resnet110", "se_resnet110", "resnet164", "se_resnet164"]  # 110+ layers: shapes and gradients on "meta"


@pytest.mark.parametrize("name", [n for n in ALL if n not in DEEP])
def test_forward_backward(name):
    # Alternate the two input sizes (CIFAR 3x32x32, Fashion-MNIST 1x28x28) to keep the suite small.
    in_chans, size = (3, 32) if ALL.index(name) % 2 == 0 else (1, 28)
    model = create_model(name, in_chans=in_chans, num_classes=7)
    assert model.default_input_size == (in_chans, 32, 32)
    out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()] == []


@pytest.mark.parametrize("name", DEEP)
@pytest.mark.parametrize("in_chans, size", [(3, 32), (1, 28)])
def test_deep_nets_on_meta(name, in_chans, size):
    with torch.device("meta"):
        model = create_model(name, in_chans=in_chans)
        out = model(torch.empty(2, in_chans, size, size))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize(
    "name, params",
    [
        ("resnet8", 78_042),  # 1 unit per stage
        ("resnet14", 175_258),  # 2 units per stage
        ("resnet20", 272_474),  # 0.27M as in He et al. (option-B projections add ~2k)
        ("resnet110", 1_730_714),  # 1.7M
        ("resnet164", 1_703_258),  # pre-activation ResNet-164: 1.7M
        ("wrn16_8", 10_961_370),  # WRN-16-8: 11.0M
    ],
)
def test_parameter_counts(name, params):
    with torch.device("meta"):
        model = create_model(name)
    assert model_complexity(model, (3, 32, 32))["params"] == params


def test_structure():
    r20 = create_model("resnet20")
    assert r20.maxpool is None and r20.conv1.stride == (1, 1) and r20.conv1.out_channels == 16
    assert [len(getattr(r20, f"layer{i}")) for i in (1, 2, 3)] == [3, 3, 3]
    assert not hasattr(r20, "layer4") and r20.fc.in_features == 64
    r164 = create_model("resnet164")  # pre-activation: BN before each conv, one final BN + ReLU
    assert r164.preact and r164.final_bn is not None and not hasattr(r164, "bn1")
    assert r164.layer1[0].bn1.num_features == 16 and r164.fc.in_features == 256
    wrn = create_model("wrn16_8")
    assert [len(wrn.layer1), wrn.layer1[0].conv1.out_channels, wrn.fc.in_features] == [2, 128, 512]


def test_se_reduction_and_stages():
    m = create_model("se_resnet20", reduction=4, se_stages=[3, 4])
    assert m.layer1[0].se is None
    assert m.layer2[0].se.rd_channels == 32 // 4


def test_too_small_input_names_the_minimum():
    m = create_model("resnet20").eval()
    with pytest.raises(ConfigError, match="3x3 is too small.*minimum is 4x4"):
        m(torch.randn(1, 3, 3, 3))
    assert m(torch.randn(1, 3, 4, 4)).shape == (1, 10)
    with pytest.raises(ConfigError, match=r"\(N, 1, H, W\).*received \(2, 3, 28, 28\)"):
        create_model("se_wrn16_8", in_chans=1)(torch.randn(2, 3, 28, 28))


def test_cifar_se_stages_are_2_to_4():
    with pytest.raises(ConfigError, match="stages are numbered 2..4"):
        create_model("se_resnet20", se_stages=[5])


def test_stride_two_stem_quarters_the_pixels():
    """``stem_stride=2`` (the fast Fashion-MNIST shapes): every stage at half the side, a quarter of the MACs."""
    plain = create_model("se_resnet14", in_chans=1)
    fast = create_model("se_resnet14", in_chans=1, stem_stride=2)
    assert fast.conv1.stride == (2, 2) and plain.conv1.stride == (1, 1)
    feats = fast.forward_body(torch.randn(2, 1, 28, 28))
    assert feats.shape == (2, 64, 4, 4)  # 28 -> 14 -> 7 -> 4
    macs = [model_complexity(m, (1, 28, 28))["macs"] for m in (plain, fast)]
    assert 0.22 < macs[1] / macs[0] < 0.30
    assert fast.min_input_size == 8
    with pytest.raises(ConfigError, match="minimum is 8x8"):
        fast(torch.randn(1, 1, 7, 7))


@pytest.mark.parametrize("kwargs", [{"stem_stride": 3}, {"stem_stride": 0}])
def test_stem_stride_refuses_other_values(kwargs):
    with pytest.raises(ConfigError, match="stem_stride must be 1 or 2"):
        create_model("resnet20", **kwargs)


def test_stem_stride_only_for_the_cifar_stem():
    with pytest.raises(ConfigError, match="only applies to stem='cifar'"):
        create_model("resnet50", stem_stride=2)
