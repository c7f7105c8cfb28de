"""The ImageNet ResNet family: structure, the paper's parameter and multiply-add counts, SE placement."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from senet import ConfigError, SqueezeExcite, create_model, list_models, model_complexity
from senet.layers import make_attn_factory
from senet.models.blocks import BasicBlock, Bottleneck

IMAGENET = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "se_resnet18", "se_resnet34", "se_resnet50", "se_resnet101", "se_resnet152",
    "resnext50_32x4d", "resnext101_32x4d", "se_resnext50_32x4d", "se_resnext101_32x4d", "senet154",
]


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def complexity(name: str, **kwargs) -> tuple[float, float]:
    """(params in millions, GMACs at 224x224) counted on the meta device."""
    c = model_complexity(meta_model(name, **kwargs))
    return c["params"] / 1e6, c["macs"] / 1e9


def test_every_name_is_registered():
    assert set(IMAGENET) <= set(list_models())


@pytest.mark.parametrize("name", IMAGENET)
def test_meta_forward_backward_reaches_every_parameter(name):
    model = meta_model(name, num_classes=7)
    out = model(torch.empty(2, 3, 64, 64, device="meta"))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert model.default_input_size == (3, 224, 224)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("se_resnet18", {}),
        ("se_resnet50", {"widths": (16, 32, 64, 128)}),
        ("se_resnext50_32x4d", {"widths": (16,) * 4}),
    ],
)
def test_real_forward_backward(name, kwargs):
    model = create_model(name, num_classes=5, **kwargs)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


@pytest.mark.parametrize(
    "name, kwargs, params, gmacs",
    [
        # exact parameter counts of the official releases (Caffe models and their PyTorch ports)
        ("resnet50", {}, 25_557_032, 3.86),
        ("resnet50", {"stride_in_1x1": False}, 25_557_032, 4.09),
        ("se_resnet50", {}, 28_088_024, 3.87),
        ("se_resnet50", {"se_bias": False}, 28_071_976, 3.87),
        ("se_resnext50_32x4d", {}, 27_559_896, 4.24),
        ("senet154", {}, 115_088_984, 20.71),
    ],
)
def test_params_and_macs_match_the_release(name, kwargs, params, gmacs):
    c = model_complexity(meta_model(name, **kwargs))
    assert c["params"] == params
    assert round(c["macs"] / 1e9, 2) == gmacs


@pytest.mark.parametrize(
    "plain, se, paper_plain, paper_se",
    [
        ("resnet101", "se_resnet101", 7.58, 7.60),
        ("resnet152", "se_resnet152", 11.30, 11.32),
        ("resnext50_32x4d", "se_resnext50_32x4d", 4.24, 4.25),
        ("resnext101_32x4d", "se_resnext101_32x4d", 7.99, 8.00),
    ],
)
def test_table2_macs_within_rounding_of_the_paper(plain, se, paper_plain, paper_se):
    # Conv/FC multiply-adds land 0.01-0.02 G below Table 2 (the paper's tool also counted element-wise ops such as
    # the residual additions); the SE increment is within 0.02 G of the paper's.
    _, g_plain = complexity(plain)
    _, g_se = complexity(se)
    assert paper_plain - 0.025 <= g_plain <= paper_plain
    assert paper_se - 0.025 <= g_se <= paper_se
    assert 0.005 < g_se - g_plain < (paper_se - paper_plain) + 0.02


#: ResNet-50's parameters (He et al.; torchvision's resnet50) and its stages: (units N_s, output width C_s).
RESNET50_PARAMS = 25_557_032
RESNET50_STAGES = {2: (3, 256), 3: (4, 512), 4: (6, 1024), 5: (3, 2048)}


def _eq5_params(stages=(2, 3, 4, 5), r=16, width_div=1) -> int:
    """Eq. 5: SE adds (2 / r) * sum_s N_s * C_s^2 weights, plus N_s * (C_s + C_s / r) FC biases, to ResNet-50.
    ``width_div=4`` puts SE on the bottleneck's 3x3 output (C_s / 4 channels), as Table 15's SE_3x3."""
    extra = 0
    for s in stages:
        n, c = RESNET50_STAGES[s]
        c //= width_div
        extra += n * (2 * c * (c // r) + c + c // r)
    return RESNET50_PARAMS + extra


@pytest.mark.parametrize(
    "kwargs, paper_m, exact",
    [
        ({"se_stages": [2]}, 25.6, _eq5_params([2])),  # Table 13
        ({"se_stages": (3,)}, 25.7, _eq5_params([3])),
        ({"se_stages": [4]}, 26.4, _eq5_params([4])),
        ({"se_position": "after_3x3"}, 25.8, _eq5_params(width_div=4)),  # Table 15, SE_3x3
        ({"reduction": 2}, 45.7, _eq5_params(r=2)),  # Table 10
        ({"reduction": 8}, 30.7, _eq5_params(r=8)),
        ({"reduction": 32}, 26.9, _eq5_params(r=32)),
    ],
)
def test_ablation_parameter_counts(kwargs, paper_m, exact):
    """The exact Eq. 5 count: the printed one-decimal figures alone accept plain ResNet-50 for SE_Stage_2."""
    params, gmacs = complexity("se_resnet50", **kwargs)
    assert round(params * 1e6) == exact
    assert exact != RESNET50_PARAMS
    # the paper's printed counts are up to 0.1M above the exact ones (SPEC section 2)
    assert paper_m - 0.1 <= params <= paper_m + 0.01
    if "reduction" not in kwargs:  # Tables 13 and 15 print 3.86-3.87 GFLOPs for these rows
        assert 3.855 < gmacs < 3.875


def test_stride_placement():
    paper, v15 = meta_model("resnet50"), meta_model("resnet50", stride_in_1x1=False)
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert paper.layer2[0].downsample[0].stride == (2, 2)
    assert meta_model("se_resnext50_32x4d").layer3[0].conv2.stride == (2, 2)


def test_senet154_structure():
    m = meta_model("senet154")
    assert [m.conv1.out_channels, m.conv2.out_channels, m.conv3.out_channels] == [64, 64, 128]
    assert m.conv1.stride == (2, 2) and m.conv1.kernel_size == (3, 3)
    unit = m.layer1[0]
    assert unit.conv1.out_channels == 128 and unit.conv2.out_channels == 256 and unit.conv2.groups == 64
    assert unit.downsample[0].kernel_size == (1, 1)  # stride-1 stage keeps the 1x1 projection
    assert m.layer2[0].downsample[0].kernel_size == (3, 3) and m.layer2[0].downsample[0].stride == (2, 2)
    assert m.drop.p == 0.2 and isinstance(unit.se, SqueezeExcite)


def test_torchvision_names():
    keys = set(create_model("resnet18").state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
            "layer4.1.conv2.weight", "fc.bias"} <= keys
    assert "layer1.0.se.fc1.weight" in create_model("se_resnet18").state_dict()


class Halve(nn.Module):
    """A stand-in attention layer: records its input and multiplies it by 0.5."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x):
        self.seen = x
        return 0.5 * x


def unit(position: str, preact: bool = False, block=Bottleneck, inplanes: int = 16, stride: int = 1):
    downsample = None
    if stride != 1:
        downsample = nn.Sequential(nn.Conv2d(inplanes, 16, 1, stride, bias=False), nn.BatchNorm2d(16))
    b = block(inplanes, 16 // block.expansion, stride, downsample, preact=preact, se_position=position,
              attn_factory=Halve)
    for m in b.modules():  # non-trivial BN statistics so F(x) != 0
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return b.eval()


def branch(b, x):
    return b.branch(b.relu(b.bn1(x)) if b.preact else x)


@pytest.mark.parametrize("block", [Bottleneck, BasicBlock])
def test_se_positions_follow_fig5(block):
    x = torch.randn(2, 16, 8, 8)
    b = unit("standard", block=block)
    torch.testing.assert_close(b(x), torch.relu(0.5 * branch(b, x) + x))
    b = unit("pre", block=block)
    torch.testing.assert_close(b(x), torch.relu(branch(b, 0.5 * x) + x))
    b = unit("post", block=block)
    torch.testing.assert_close(b(x), 0.5 * torch.relu(branch(b, x) + x))
    b = unit("identity", block=block)
    torch.testing.assert_close(b(x), torch.relu(branch(b, x) + 0.5 * x))
    b = unit("after_3x3", block=block)
    b(x)
    assert b.se.seen.shape[1] == (4 if block is Bottleneck else 16)
    b.se = None  # a unit keeps working without its SE
    assert b(x).shape == x.shape


def test_identity_position_uses_the_projection():
    b = unit("identity", stride=2)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(b(x), torch.relu(b.branch(x) + 0.5 * b.downsample(x)))
    assert b.se.seen.shape == (2, 16, 4, 4)


def test_preact_unit_has_no_final_relu():
    b = unit("standard", preact=True)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(b(x), 0.5 * branch(b, x) + x)


def test_setting_se_to_none_gives_the_plain_network():
    se, plain = create_model("se_resnet18").eval(), create_model("resnet18").eval()
    plain.load_state_dict({k: v for k, v in se.state_dict().items() if ".se." not in k})
    for m in se.modules():
        if hasattr(m, "se") and isinstance(m.se, SqueezeExcite):
            m.se = None
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(se(x), plain(x))


def test_other_attention_layers_and_json_kwargs():
    kwargs = json.loads(json.dumps({"attn_layer": "eca", "se_stages": (4, 5), "se_position": "post"}))
    m = meta_model("se_resnet50", **kwargs)
    names = [n for n, mod in m.named_modules() if n.endswith(".se") and mod is not None]
    assert names and all(n.startswith(("layer3", "layer4")) for n in names)
    assert type(m.layer3[0].se).__name__ == "ECA"
    assert meta_model("resnet50", attn_layer="se").layer1[0].se is not None


def test_num_classes_zero_returns_features():
    m = create_model("resnet18", num_classes=0).eval()
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 512)
    assert m.forward_head(m.forward_features(torch.randn(1, 3, 32, 32)), pre_logits=True).shape == (1, 512)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"se_stages": [1, 2]}, "stages are numbered 2..5"),
        ({"se_stages": [6]}, "stages are numbered 2..5"),
        ({"se_stages": []}, "non-empty"),
        ({"se_position": "middle"}, "unknown se_position 'middle'"),
        ({"attn_layer": "eca", "reduction": 8}, "ECA does not take option(s) reduction"),
        ({"attn_layer": None, "reduction": 8}, "only take(s) effect with an attention layer"),
        ({"squeeze": "median"}, "unknown squeeze"),
        ({"stem": "tall"}, "unknown stem"),
        ({"in_chans": 0}, "in_chans"),
        ({"size": 3}, "unknown argument(s) size"),
    ],
)
def test_bad_options_raise_one_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        meta_model("se_resnet50", **kwargs)


def test_plain_model_refuses_se_options():
    with pytest.raises(ConfigError, match="se_stages"):
        meta_model("resnet50", se_stages=[2])
    with pytest.raises(ConfigError, match="se_position"):
        meta_model("resnet50", se_position="post")
    with pytest.raises(ConfigError, match="halve_first_width applies to bottleneck units"):
        meta_model("resnet18", halve_first_width=True)
    with pytest.raises(ConfigError, match="basic blocks take groups=1"):
        meta_model("resnet18", groups=32)


def test_bad_inputs_name_what_was_expected():
    m = create_model("resnet18")
    with pytest.raises(ConfigError, match=r"expects input of shape \(N, 3, H, W\).*received \(1, 1, 64, 64\)"):
        m(torch.randn(1, 1, 64, 64))
    with pytest.raises(ConfigError, match="16x16 is too small.*minimum is 32x32"):
        m(torch.randn(1, 3, 16, 16))
    with pytest.raises(ConfigError, match="expects input"):
        m(torch.randn(3, 64, 64))
    assert create_model("resnet18", in_chans=1).eval()(torch.randn(1, 1, 32, 32)).shape == (1, 1000)


def test_reduction_is_checked_against_each_blocks_real_width():
    # The narrowest SE of SE-ResNet-50 has C=256, so r=128 (C/r=2) is valid everywhere.
    m = meta_model("se_resnet50", reduction=128)
    widths = sorted((b.channels, b.rd_channels) for b in m.modules() if isinstance(b, SqueezeExcite))
    assert widths[0] == (256, 2)
    with pytest.raises(ConfigError, match="C=16"):  # SE-ResNet-20's first stage has 16 channels
        meta_model("se_resnet20", reduction=64)


def test_unknown_option_names_are_refused_before_any_block_is_built():
    with pytest.raises(ConfigError, match=r"SqueezeExcite does not take option\(s\) extent"):
        make_attn_factory("se", attn_kwargs={"extent": 2})
    with pytest.raises(ConfigError, match=r"ChannelSpatialSE does not take option\(s\) kernel_size"):
        make_attn_factory("scse", attn_kwargs={"kernel_size": 3})
    build = make_attn_factory("scse", reduction=4, attn_kwargs={"combine": "max", "squeeze": "max"})
    assert build(32).combine == "max" and build(32).cse.rd_channels == 8
