"""``senet.fold_batchnorm``: BN folded into the preceding convs, the same eval outputs, the original untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import senet
from senet import SenetError, create_model, fold_batchnorm
from senet.models.fold import fold_conv_bn


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so a wrong fold cannot pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model


def _count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


CASES = [
    # name, kwargs, input, BNs expected to stay
    ("se_resnet50", {}, (2, 3, 64, 64), 0),
    ("se_resnext50_32x4d", {}, (1, 3, 64, 64), 0),
    ("resnet20", {"in_chans": 1}, (2, 1, 28, 28), 0),
    ("se_resnet14", {"in_chans": 1, "stem_stride": 2}, (2, 1, 28, 28), 0),
    ("se_resnet164", {}, (2, 3, 16, 16), 18 * 3 + 1),  # pre-activation: each unit's input BN and the final BN
    ("se_wrn16_8", {}, (2, 3, 16, 16), 2 * 3 + 1),
    ("se_vgg16_bn", {"num_classes": 10}, (1, 3, 32, 32), 0),
    ("se_mobilenet_v1", {"num_classes": 10}, (1, 3, 32, 32), 0),
    ("se_shufflenet_v1_g3", {"num_classes": 10}, (1, 3, 32, 32), 0),
    ("se_bn_inception", {"num_classes": 10}, (1, 3, 64, 64), 0),
    # SENet-154's deep stem and 3x3 projections, small: three stem convs, each with its BN
    ("se_resnet18", {"stem": "deep", "stem_width": 32, "down_kernel_size": 3}, (1, 3, 32, 32), 0),
]


@pytest.mark.parametrize("name, kwargs, shape, left", CASES)
def test_same_outputs_fewer_bns(name, kwargs, shape, left):
    torch.manual_seed(0)
    model = _randomise_bn(create_model(name, **kwargs)).double().eval()  # float64: deep nets amplify rounding
    x = torch.randn(shape, dtype=torch.float64)
    folded, count = fold_batchnorm(model)
    assert _count_bn(folded) == left and count == _count_bn(model) - left
    with torch.no_grad():
        ref = model(x)
        assert (folded(x) - ref).norm() / ref.norm() < 1e-10
    assert _count_bn(model) == count + left  # the original keeps its BNs


def test_original_keeps_its_mode_and_weights():
    model = create_model("se_resnet20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, _ = fold_batchnorm(model)
    assert model.training and not folded.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_inplace_and_channels_last():
    model = _randomise_bn(create_model("se_resnet18")).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        same, count = fold_batchnorm(model, inplace=True)
        assert same is model and count == _count_bn(create_model("se_resnet18"))
        model = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-4)


def test_conv_with_bias_and_plain_bn_then_bn_without_affine():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(4, 6, 3, bias=True), _randomise_bn(nn.BatchNorm2d(6, affine=True))
    bn.eval()
    x = torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        ref = bn(conv(x))
        fold_conv_bn(conv, bn)
        torch.testing.assert_close(conv(x), ref, rtol=1e-5, atol=1e-5)
    conv2, bn2 = nn.Conv2d(4, 6, 1, bias=False), nn.BatchNorm2d(6, affine=False).eval()
    bn2.running_var.fill_(4.0)
    with torch.no_grad():
        ref = bn2(conv2(x))
        fold_conv_bn(conv2, bn2)
        torch.testing.assert_close(conv2(x), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="running statistics"):
        fold_conv_bn(nn.Conv2d(4, 6, 1), nn.BatchNorm2d(6, track_running_stats=False))


def test_folded_model_is_not_saved(tmp_path):
    folded, _ = fold_batchnorm(create_model("resnet20"))
    with pytest.raises(SenetError, match="save the model before folding"):
        senet.save_model(folded, tmp_path / "m")
    assert not (tmp_path / "m").exists()


class _OwnOrder(nn.Sequential):
    """A Sequential subclass that applies its children in another order: folding by position would be wrong."""

    def forward(self, x):
        return self[0](self[1](x))


def test_left_alone_where_the_order_or_sharing_is_unknown():
    shared_conv = nn.Conv2d(3, 3, 1)  # used by "a" and "b": folding a's BN into it would change b
    model = nn.ModuleDict({"own": _OwnOrder(nn.Conv2d(3, 3, 1), _randomise_bn(nn.BatchNorm2d(3))),
                           "a": nn.Sequential(shared_conv, _randomise_bn(nn.BatchNorm2d(3))),
                           "b": nn.Sequential(shared_conv, nn.ReLU())}).eval()
    folded, count = fold_batchnorm(model)
    assert count == 0 and _count_bn(folded) == 2


def test_custom_unit_with_its_own_branch_is_not_folded():
    from senet.models.blocks import BasicBlock

    class Reordered(BasicBlock):
        def branch(self, x):
            return self.conv2(self.bn2(self.relu(self.bn1(self.conv1(x)))))

    model = senet.models.resnet.ResNet(Reordered, [1, 1, 1], widths=(8, 16, 32), stem="cifar", stem_width=8,
                                       num_classes=4)
    _randomise_bn(model).eval()
    x = torch.randn(2, 3, 16, 16)
    folded, count = fold_batchnorm(model)
    assert _count_bn(folded) == 3 * 2 and count == 3  # the units' BNs stay; stem and the 2 projection BNs fold
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
