"""BN-Inception, Inception-ResNet-v2, VGG-16, MobileNet and ShuffleNet, plain and with SE (arXiv 1709.01507)."""

import json

import pytest
import torch
from torch import nn

from senet.complexity import count_params, model_complexity
from senet.errors import ConfigError
from senet.io import load_model, save_model
from senet.layers import ECA, SqueezeExcite
from senet.models import create_model, default_input_size, list_models, named_se_blocks
from senet.models.inception_resnet import InceptionResidual, block_b_branches
from senet.models.shufflenet import ShuffleUnit, channel_shuffle

# name -> (small input side for a real forward/backward, extra kwargs that keep the model small, SE blocks)
FAMILIES = {
    "bn_inception": (32, {}, 10),
    "inception_resnet_v2": (75, {}, 40),
    "vgg16_bn": (32, {"hidden": 64}, 13),
    "mobilenet_v1": (32, {}, 13),
    "shufflenet_v1_g3": (32, {}, 16),
}
ALL = [n for n in FAMILIES] + [f"se_{n}" for n in FAMILIES]


def _family(name: str) -> tuple[int, dict, int]:
    return FAMILIES[name.removeprefix("se_")]


def test_every_family_is_registered_plain_and_with_se():
    assert set(ALL) <= set(list_models())


#: Too big to train a step of on 2 shared CPU cores in a unit test: checked on the meta device, plus one real
#: no-grad forward at the smallest input the stem allows.
META_ONLY = {"inception_resnet_v2", "se_inception_resnet_v2"}


# The SE variants hold every parameter of the plain ones plus the SE blocks; the plain BN-Inception and VGG run a
# forward in test_num_classes_zero_returns_pooled_features, which keeps this file cheap on 2 CPU cores.
@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("se_")] + ["mobilenet_v1", "shufflenet_v1_g3",
                                                                                  "inception_resnet_v2"])
def test_forward_shape_finite_and_every_parameter_gets_a_gradient(name):
    side, kwargs, _ = _family(name)
    device = "meta" if name in META_ONLY else "cpu"
    with torch.device(device):
        model = create_model(name, num_classes=7, **kwargs)
        x = torch.randn(2, 3, side, side)
    out = model(x)
    assert out.shape == (2, 7)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.shape != p.shape]
    assert not missing, f"no gradient for {missing[:5]}"
    if device == "cpu":
        assert torch.isfinite(out).all()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_inception_resnet_v2_real_forward_at_its_smallest_input():
    model = create_model("se_inception_resnet_v2", num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 75, 75))
    assert out.shape == (1, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_se_blocks_are_found_with_hidden_width_c_over_16(name):
    _, kwargs, count = _family(name)
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    blocks = named_se_blocks(model)
    if not name.startswith("se_"):
        assert blocks == {}
        return
    assert len(blocks) == count
    assert all(isinstance(b, SqueezeExcite) and b.rd_channels == b.channels // 16 for b in blocks.values())
    assert all(path.endswith(".se") for path in blocks)  # stable module paths


def test_default_input_sizes():
    with torch.device("meta"):
        assert default_input_size(create_model("se_inception_resnet_v2", num_classes=0)) == (3, 299, 299)
        assert default_input_size(create_model("mobilenet_v1", in_chans=1)) == (1, 224, 224)


def test_param_counts_of_reference_layouts():
    """Counts every port of these networks has (torchvision vgg16_bn, timm inception_resnet_v2, MobileNet 1.0)."""
    with torch.device("meta"):
        assert count_params(create_model("vgg16_bn")) == 138_365_992
        assert count_params(create_model("inception_resnet_v2")) == 55_843_464
        assert count_params(create_model("mobilenet_v1")) == 4_231_976


def _shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return sorted(tuple(t.shape) for t in model.state_dict().values() if t.dim() > 0)


def test_vgg16_bn_has_torchvisions_tensors():
    import torchvision

    with torch.device("meta"):
        ours, theirs = create_model("vgg16_bn"), torchvision.models.vgg16_bn()
    assert _shapes(ours) == _shapes(theirs)


def test_inception_resnet_v2_has_timms_tensors():
    import timm

    with torch.device("meta"):
        ours, theirs = create_model("inception_resnet_v2"), timm.create_model("inception_resnet_v2")
    assert _shapes(ours) == _shapes(theirs)


@pytest.mark.parametrize("name, paper_params_m, paper_gmacs", [
    ("mobilenet_v1", 4.2, 0.569), ("se_mobilenet_v1", 4.7, 0.572),
    ("bn_inception", None, 2.03), ("se_bn_inception", None, 2.04),
    ("vgg16_bn", None, 15.47), ("se_vgg16_bn", None, 15.48),
])
def test_complexity_matches_the_paper(name, paper_params_m, paper_gmacs):
    with torch.device("meta"):
        model = create_model(name)
    c = model_complexity(model, default_input_size(model))
    if paper_params_m is not None:
        assert abs(c["params"] / 1e6 - paper_params_m) <= 0.02 * paper_params_m
    assert abs(c["macs"] / 1e9 - paper_gmacs) <= 0.005 * paper_gmacs


def test_se_options_reach_every_block_and_survive_json():
    kwargs = json.loads(json.dumps({"reduction": 8, "squeeze": "max", "gate": "tanh", "se_bias": False}))
    with torch.device("meta"):
        model = create_model("se_mobilenet_v1", **kwargs)
    for block in named_se_blocks(model).values():
        assert block.rd_channels == block.channels // 8 and block.squeeze == "max"
        assert isinstance(block.gate, nn.Tanh) and block.fc1.bias is None and block.fc2.bias is None


def test_other_attention_layers_and_option_errors():
    with torch.device("meta"):
        eca = create_model("shufflenet_v1_g3", attn_layer="eca")
        assert len(named_se_blocks(eca)) == 16 and all(isinstance(b, ECA) for b in named_se_blocks(eca).values())
        assert named_se_blocks(create_model("se_vgg16_bn", attn_layer=None)) == {}
        with pytest.raises(ConfigError, match="reduction"):
            create_model("bn_inception", attn_layer="eca", reduction=8)
        with pytest.raises(ConfigError, match=r"only take\(s\) effect with an attention layer"):
            create_model("vgg16_bn", reduction=8)
        with pytest.raises(ConfigError, match="unknown attention layer"):
            create_model("mobilenet_v1", attn_layer="sqeeze")
        with pytest.raises(ConfigError, match="groups must be one of"):
            create_model("shufflenet_v1_g3", groups=5)


def test_bad_inputs_raise_readable_errors():
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=3)
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 1, 32, 32))
    with torch.device("meta"):
        irv2 = create_model("inception_resnet_v2", num_classes=2)
    with pytest.raises(ConfigError, match="minimum is 75x75"):
        irv2(torch.empty(1, 3, 64, 64, device="meta"))
    with pytest.raises(ConfigError, match="drop_rate"):
        create_model("bn_inception", drop_rate=1.5)


def test_num_classes_zero_returns_pooled_features():
    model = create_model("bn_inception", num_classes=0).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, model.num_features) == (1, 1024)
    vgg = create_model("vgg16_bn", num_classes=0, hidden=16).eval()
    assert vgg.num_features == 512 and vgg(torch.randn(1, 3, 32, 32)).shape == (1, 16)


def test_save_and_load_rebuild_the_same_model(tmp_path):
    model = create_model("se_shufflenet_v1_g3", reduction=8, num_classes=4).eval()
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors").eval()
    x = torch.rand(1, 3, 32, 32)
    assert loaded.senet_config == {"name": "se_shufflenet_v1_g3", "kwargs": {"reduction": 8, "num_classes": 4}}
    assert torch.equal(model(x), loaded(x))


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


class _Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_se_sits_on_the_residual_branch_before_the_addition():
    """With the SE output forced to zero, a residual unit reduces to ReLU(identity)."""
    se = SqueezeExcite  # channels -> module, like the factory a model passes
    units = [InceptionResidual(1088, block_b_branches(1088), 384, 0.1, attn_factory=se),
             ShuffleUnit(480, 480, 1, 3, attn_factory=se)]
    for unit in units:
        unit.eval()
        unit.se = _Zero()
        x = torch.randn(2, _in_channels(unit), 5, 5)
        assert torch.equal(unit(x), torch.relu(x))


def _in_channels(unit: nn.Module) -> int:
    return next(m for m in unit.modules() if isinstance(m, nn.Conv2d)).in_channels


@pytest.mark.parametrize("name, path", [("se_vgg16_bn", "features.conv2_1"), ("se_mobilenet_v1", "blocks.4"),
                                        ("se_bn_inception", "inception_3c")])
def test_se_reads_the_activated_output_of_its_unit(name, path):
    """VGG/MobileNet: SE follows the ReLU; BN-Inception: SE sees the whole concatenated module output."""
    model = create_model(name, **_family(name)[1]).eval()
    seen = {}
    unit = model.get_submodule(path)
    unit.se.register_forward_hook(lambda m, inp, out: seen.update(inp=inp[0], out=out))
    result = unit(torch.rand(2, _in_channels(unit), 8, 8))  # non-negative, as the previous ReLU leaves it
    assert seen["inp"].min() >= 0 and seen["inp"].shape[1] == unit.se.channels
    assert torch.equal(result, seen["out"])  # the SE output is the unit's output
