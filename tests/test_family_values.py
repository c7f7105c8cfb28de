"""Output values of the non-ResNet families against references, not only their shapes and counts.

* VGG-16-BN and Inception-ResNet-v2 are compared with torchvision's ``vgg16_bn`` and timm's
  ``inception_resnet_v2`` given the same (random) weights, copied tensor by tensor in module order.
* SE-Inception-ResNet-v2 is timm's network with our SE block inserted where the paper puts it (Fig. 3 applied to
  Inception-ResNet: on the residual branch after the 1x1 up-projection, before the scaled addition) by a hook.
* BN-Inception, MobileNet and ShuffleNet units are recomputed with explicit functional calls in the order their
  papers give (Ioffe & Szegedy 2015 Fig. 5 / the Caffe release's branch order; Howard et al. 2017 Fig. 3; Zhang et
  al. 2017 Fig. 2), SE written out as Eq. 2-4 of arXiv 1709.01507: ``x * sigmoid(W2 relu(W1 mean(x)))``.

BatchNorm statistics are randomised and every model runs in eval mode, so a BN in the wrong place shows.
"""

from __future__ import annotations

import pytest
import timm  # the dev extra that holds the reference: a missing one is an error, not a quiet skip
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from senet.layers import make_attn_factory
from senet.models import create_model
from senet.models.inception import BN_INCEPTION_MODULES, InceptionModule
from senet.models.mobile import DepthwiseSeparable
from senet.models.shufflenet import ShuffleUnit


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN affine and running statistics (the defaults 0/1 would hide a misplaced BN), eval mode."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
    return model.eval()


def _copy_in_order(source: nn.Module, target: nn.Module, renamed: dict[str, str] | None = None) -> None:
    """Copy ``source``'s state into ``target``: keys under a ``renamed`` prefix by name, the rest entry by entry in
    module order (checking that each pair is the same kind of tensor with the same shape)."""
    renamed = renamed or {}
    src, dst = source.state_dict(), target.state_dict()
    mapped = {}
    for old, new in renamed.items():
        for k in [k for k in src if k.startswith(old)]:
            mapped[new + k[len(old):]] = src.pop(k)
    rest = [k for k in dst if k not in mapped]
    assert len(src) == len(rest)
    for (ks, vs), kd in zip(src.items(), rest):
        assert ks.rsplit(".", 1)[-1] == kd.rsplit(".", 1)[-1] and vs.shape == dst[kd].shape, (ks, kd)
        mapped[kd] = vs
    target.load_state_dict(mapped, strict=True)


@torch.no_grad()
def test_vgg16_bn_equals_torchvision_with_the_same_weights():
    ref = _randomise(torchvision.models.vgg16_bn(weights=None, num_classes=7))
    ours = create_model("vgg16_bn", num_classes=7).eval()
    _copy_in_order(ref, ours, {"classifier.0.": "pre_logits.0.", "classifier.3.": "pre_logits.3.",
                               "classifier.6.": "fc."})
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def irv2_pair():
    ref = _randomise(timm.create_model("inception_resnet_v2", pretrained=False, num_classes=5))
    ours = create_model("inception_resnet_v2", num_classes=5).eval()
    _copy_in_order(ref, ours)
    return ref, ours


@torch.no_grad()
def test_inception_resnet_v2_equals_timm_with_the_same_weights(irv2_pair):
    ref, ours = irv2_pair
    x = torch.randn(1, 3, 75, 75)  # the stem's smallest input
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_se_inception_resnet_v2_is_timm_with_se_before_the_scaled_addition(irv2_pair):
    ref, _ = irv2_pair
    se_model = create_model("se_inception_resnet_v2", num_classes=5).eval()
    plain_keys = {k for k in se_model.state_dict() if ".se." not in k}
    ref_state = list(ref.state_dict().values())
    ours_plain = [k for k in se_model.state_dict() if k in plain_keys]
    assert len(ours_plain) == len(ref_state)
    gen = torch.Generator().manual_seed(1)
    se_state = {k: 0.3 * torch.randn(v.shape, generator=gen) for k, v in se_model.state_dict().items() if ".se." in k}
    se_model.load_state_dict({**dict(zip(ours_plain, ref_state)), **se_state})
    # timm's blocks compute act(x + scale * conv2d(branches)): the paper's SE goes on conv2d's output
    residual_blocks = [*ref.repeat, *ref.repeat_1, *ref.repeat_2, ref.block8]
    ours_blocks = [*se_model.repeat_a, *se_model.repeat_b, *se_model.repeat_c]
    assert len(residual_blocks) == len(ours_blocks) == 40
    handles = [b.conv2d.register_forward_hook(lambda m, i, out, se=o.se: _se_by_hand(se, out))
               for b, o in zip(residual_blocks, ours_blocks)]
    try:
        x = torch.randn(1, 3, 75, 75)
        want = ref(x)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(se_model(x), want, rtol=1e-4, atol=1e-4)
    assert (want - ref(x)).abs().max() > 1e-2  # the SE blocks change the logits: the comparison is not vacuous


def _se_by_hand(se: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Eq. 2-4: squeeze by the spatial mean, excite by FC -> ReLU -> FC -> sigmoid, scale each channel."""
    s = x.mean(dim=(2, 3))
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    z = F.relu(s @ w1.T + (b1 if b1 is not None else 0))
    g = torch.sigmoid(z @ w2.T + (b2 if b2 is not None else 0))
    return x * g[:, :, None, None]


def _conv_bn(unit: nn.Module, x: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """conv -> BN (eval) [-> ReLU] with explicit functional calls on ``unit``'s tensors."""
    conv, bn = unit.conv, unit.bn
    y = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return F.relu(y) if relu else y


def _shuffle_by_index(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel j of the output is channel (j % g) * (C / g) + j // g of the input (Zhang et al., Fig. 1)."""
    c = x.shape[1]
    order = [(j % groups) * (c // groups) + j // groups for j in range(c)]
    return x[:, order]


SE16 = make_attn_factory("se")


@pytest.mark.parametrize("name", ["inception_3a", "inception_3c"])
@torch.no_grad()
def test_bn_inception_module_order(name):
    """Branches 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool -> 1x1, concatenated in that order, then SE."""
    spec = BN_INCEPTION_MODULES[name]
    in_ch = 192 if name == "inception_3a" else 320
    unit = _randomise(InceptionModule(in_ch, spec, SE16))
    x = torch.randn(2, in_ch, 9, 9)
    stride = spec[-1]
    parts = []
    if unit.branch1x1 is not None:
        parts.append(_conv_bn(unit.branch1x1, x))
    parts.append(_conv_bn(unit.branch3x3[1], _conv_bn(unit.branch3x3[0], x)))
    d = unit.branch3x3dbl
    parts.append(_conv_bn(d[2], _conv_bn(d[1], _conv_bn(d[0], x))))
    if spec[5] == "avg":
        pooled = F.avg_pool2d(x, 3, stride, 1)  # Caffe's average pool counts the padding
        parts.append(_conv_bn(unit.branch_pool[1], pooled))
    else:
        parts.append(F.max_pool2d(x, 3, stride, 1))  # stride-2 modules pass the max-pool through
    want = _se_by_hand(unit.se, torch.cat(parts, 1))
    torch.testing.assert_close(unit(x), want, rtol=1e-5, atol=1e-5)
    assert want.shape[1] == sum(p.shape[1] for p in parts)


@pytest.mark.parametrize("stride", [1, 2])
@torch.no_grad()
def test_mobilenet_block_order(stride):
    """3x3 depthwise -> BN -> ReLU -> 1x1 -> BN -> ReLU (Howard et al., Fig. 3), then SE on the block's output."""
    unit = _randomise(DepthwiseSeparable(16, 32, stride, SE16))
    x = torch.randn(2, 16, 8, 8)
    dw = F.relu(F.batch_norm(F.conv2d(x, unit.dw.conv.weight, None, stride, 1, 1, 16), unit.dw.bn.running_mean,
                             unit.dw.bn.running_var, unit.dw.bn.weight, unit.dw.bn.bias, False, 0.0, unit.dw.bn.eps))
    pw = _conv_bn(unit.pw, dw)
    torch.testing.assert_close(unit(x), _se_by_hand(unit.se, pw), rtol=1e-5, atol=1e-5)
    assert unit.dw.conv.groups == 16 and unit.dw.conv.weight.shape == (16, 1, 3, 3)


@pytest.mark.parametrize("stride, in_ch, out_ch", [(1, 48, 48), (2, 24, 48)])
@torch.no_grad()
def test_shufflenet_unit_order(stride, in_ch, out_ch):
    """GConv1x1 -> BN -> ReLU -> shuffle -> DWConv3x3 -> BN -> GConv1x1 -> BN -> SE, then add x (stride 1) or
    concatenate avgpool3x3/2(x) (stride 2), then ReLU (Zhang et al., Fig. 2b/2c)."""
    groups = 3
    unit = _randomise(ShuffleUnit(in_ch, out_ch, stride, groups, attn_factory=SE16))
    x = torch.randn(2, in_ch, 8, 8)
    out = _shuffle_by_index(_conv_bn(unit.conv1, x), groups)
    out = _conv_bn(unit.conv2, _conv_bn(unit.dw, out, relu=False), relu=False)
    out = _se_by_hand(unit.se, out)
    if stride == 1:
        want = F.relu(out + x)
    else:
        want = F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), out], 1))
    torch.testing.assert_close(unit(x), want, rtol=1e-5, atol=1e-5)
    assert unit.conv1.conv.groups == groups and unit.conv2.conv.groups == groups


def test_shuffle_is_not_the_identity_here():
    """The unit test above would pass with the shuffle dropped if the shuffle were a no-op on its input."""
    x = torch.arange(12.0).view(1, 12, 1, 1)
    assert _shuffle_by_index(x, 3).flatten().tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
