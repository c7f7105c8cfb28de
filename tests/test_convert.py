"""Weight conversion from timm and the Caffe port: every pair gives the source model's logits within 1e-4.

timm models are built randomly initialised (nothing downloaded). Weights - BatchNorm running statistics
included - are drawn at random, so a wrong stride placement, stem pooling, SE width or key mapping shows up in
the logits.
"""

import math

import pytest
import timm
import torch
from torch import nn

from senet.cli import main
from senet.errors import ConfigError, SenetError
from senet.interop import convert_weights, save_converted
from senet.io import load_model

# (peer model, layout, our model)
PAIRS = [
    ("seresnet18", "timm", "se_resnet18"),
    ("seresnet34", "timm", "se_resnet34"),
    ("seresnet50", "timm", "se_resnet50"),
    ("seresnet101", "timm", "se_resnet101"),
    ("seresnext50_32x4d", "timm", "se_resnext50_32x4d"),
    ("seresnext101_32x4d", "timm", "se_resnext101_32x4d"),
    ("legacy_seresnet18", "caffe-port", "se_resnet18"),
    ("legacy_seresnet34", "caffe-port", "se_resnet34"),
    ("legacy_seresnet50", "caffe-port", "se_resnet50"),
    ("legacy_seresnet101", "caffe-port", "se_resnet101"),
    ("legacy_seresnext50_32x4d", "caffe-port", "se_resnext50_32x4d"),
    ("legacy_seresnext101_32x4d", "caffe-port", "se_resnext101_32x4d"),
]
# The deepest ones share one test; they are built without initialisation and filled directly.
BIG = [
    ("seresnet152", "timm", "se_resnet152"),
    ("legacy_seresnet152", "caffe-port", "se_resnet152"),
    ("legacy_senet154", "caffe-port", "senet154"),
]
# The smallest input our ResNets take (stages see 8, 4, 2, 1 pixels): still enough to tell a stride on the 1x1
# from one on the 3x3, and ceil-mode stem pooling from padded pooling; kept small for CPU time.
X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def random_peer(name: str) -> nn.Module:
    """A timm model with random weights everywhere (He-scaled convs, non-trivial BN statistics), in eval mode."""
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, math.sqrt(2.0 / fan_in), generator=g)
                if module.bias is not None:
                    module.bias.normal_(0, 0.1, generator=g)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.2, 0.8, generator=g)
                module.bias.normal_(0, 0.1, generator=g)
                module.running_mean.normal_(0, 0.1, generator=g)
                module.running_var.uniform_(0.5, 1.5, generator=g)
                module.num_batches_tracked.zero_()
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, 0.05, generator=g)
                module.bias.normal_(0, 0.1, generator=g)
    return model.eval()


def _check_pair(peer_name: str, source: str, ours: str, x: torch.Tensor = X) -> None:
    peer = random_peer(peer_name)
    model, report = convert_weights(peer.state_dict(), source=source, model=peer_name)
    assert report.model == ours and not model.training
    with torch.no_grad():
        expected, got = peer(x), model(x)
    assert expected.abs().max() > 1e-2  # the comparison is not between two near-zero tensors
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("peer_name,source,ours", PAIRS, ids=[p[0] for p in PAIRS])
def test_converted_logits_match_the_peer(peer_name, source, ours):
    _check_pair(peer_name, source, ours)


def test_converted_logits_match_the_peer_deepest():
    for peer_name, source, ours in BIG:
        _check_pair(peer_name, source, ours)


@pytest.mark.slow
def test_timm_senet154_deep_stem_converts():
    """timm's own SENet-154 (deep stem as one Sequential ``conv1.0 ... conv1.6``), beyond the issue's list."""
    _check_pair("senet154", "timm", "senet154")


def test_timm_deep_stem_keys_are_renamed():
    from senet.interop.layouts import LAYOUTS

    keys = ["conv1.0.weight", "conv1.1.running_var", "conv1.3.weight", "conv1.4.bias", "conv1.6.weight",
            "bn1.weight", "layer1.0.bn1.weight"]
    mapped = LAYOUTS["timm"].map_keys(dict.fromkeys(keys, torch.zeros(1)))
    assert list(mapped) == ["conv1.weight", "bn1.running_var", "conv2.weight", "bn2.bias", "conv3.weight",
                            "bn3.weight", "layer1.0.bn1.weight"]


def test_stride_placement_and_pooling_follow_the_layout():
    _, timm_report = convert_weights(random_peer("seresnet50").state_dict(), "timm")
    _, caffe_report = convert_weights(random_peer("legacy_seresnet50").state_dict(), "caffe-port")
    assert timm_report.inferred and timm_report.model == caffe_report.model == "se_resnet50"
    assert timm_report.kwargs["stride_in_1x1"] is False and timm_report.kwargs["stem_pool"] == "pad"
    assert caffe_report.kwargs["stride_in_1x1"] is True and caffe_report.kwargs["stem_pool"] == "ceil"
    _, resnext = convert_weights(random_peer("legacy_seresnext50_32x4d").state_dict(), "caffe-port")
    assert resnext.kwargs["stride_in_1x1"] is False  # the port's SE-ResNeXt strides its 3x3


def test_cli_converts_a_file_that_load_model_rebuilds(tmp_path, capsys):
    from safetensors.torch import save_file

    peer = random_peer("legacy_seresnet18")
    src = tmp_path / "legacy.safetensors"
    save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(src))
    out = tmp_path / "se_resnet18_caffe.safetensors"
    assert main(["convert", str(src), "--from", "caffe-port", "--out", str(out)]) == 0
    assert "se_resnet18 (inferred)" in capsys.readouterr().out
    rebuilt = load_model(out)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(X), peer(X), atol=1e-4, rtol=0)


def test_pth_file_with_wrapper_prefix_and_no_bn_counters_into_a_folder(tmp_path):
    peer = random_peer("seresnet18")
    state = {f"module.{k}": v for k, v in peer.state_dict().items() if not k.endswith("num_batches_tracked")}
    src = tmp_path / "old.pth"
    torch.save({"state_dict": state, "epoch": 3}, src)
    model, report = convert_weights(src, "timm", model="se_resnet18")
    assert len(report.filled) == 20  # one counter per BatchNorm of SE-ResNet-18
    folder = save_converted(model, tmp_path / "converted", report)
    rebuilt = load_model(folder)
    assert rebuilt.senet_saved_config["converted_from"]["source"] == "timm"
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(X), peer(X), atol=1e-4, rtol=0)


def test_head_size_is_read_from_the_weights():
    peer = timm.create_model("seresnet18", pretrained=False, num_classes=7).eval()
    model, report = convert_weights(peer.state_dict(), "timm")
    assert report.kwargs["num_classes"] == 7 and model.fc.out_features == 7


def test_mismatches_are_listed():
    state = random_peer("seresnet18").state_dict()
    del state["layer2.0.conv1.weight"]
    state["layer9.extra.weight"] = torch.zeros(1)
    state["layer1.0.se.fc1.weight"] = torch.zeros(5, 64, 1, 1)
    with pytest.raises(SenetError) as info:
        convert_weights(state, "timm", model="se_resnet18")
    message = str(info.value)
    assert "missing (1): layer2.0.conv1.weight" in message
    assert "unexpected (1): layer9.extra.weight" in message
    assert "layer1.0.se.fc1.weight: file (5, 64, 1, 1) vs model (8, 64, 1, 1)" in message


def test_wrong_layout_or_model_is_refused():
    timm_state = random_peer("seresnet18").state_dict()
    with pytest.raises(SenetError, match="--from timm does not fit .* caffe-port layout"):
        convert_weights(random_peer("legacy_seresnet18").state_dict(), "timm", model="se_resnet18")
    with pytest.raises(SenetError, match="--from caffe-port does not fit .* timm layout"):
        convert_weights(timm_state, "caffe-port", model="se_resnet18")
    with pytest.raises(SenetError, match="pass the model name"):  # no model of ours is a SE-ResNeXt-26
        convert_weights(random_peer("legacy_seresnext26_32x4d").state_dict(), "caffe-port")
    with pytest.raises(ConfigError, match="no model 'notebook_simple'"):
        convert_weights(timm_state, "timm", model="notebook_simple")
    with pytest.raises(ConfigError, match="unknown weight source"):
        convert_weights(timm_state, "keras", model="se_resnet18")
    assert main(["convert", "missing.pth", "--from", "timm", "--out", "x.safetensors"]) == 2


def test_out_file_refuses_a_foreign_config_beside_it(tmp_path):
    model, report = convert_weights(random_peer("seresnet18").state_dict(), "timm")
    (tmp_path / "config.json").write_text('{"format": "senet", "version": 1, "model": {"name": "resnet50"}}')
    with pytest.raises(SenetError, match="describes another model"):
        save_converted(model, tmp_path / "w.safetensors", report)


# ---------------------------------------------------------------------------------------------- layout detection
@pytest.mark.parametrize("peer_name,layout", [("seresnet50", "timm"), ("legacy_seresnet50", "caffe-port"),
                                              ("resnet50", "torchvision")])
def test_layout_is_read_from_the_keys_and_logits_match(peer_name, layout):
    """No --from: the layout (and with it the stride placement and stem pooling) comes from the keys."""
    peer = random_peer(peer_name)
    model, report = convert_weights(peer.state_dict())
    assert report.source == layout
    with torch.no_grad():
        torch.testing.assert_close(model(X), peer(X), atol=1e-4, rtol=0)


def test_torchvision_resnet_converts_with_its_own_architecture():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    peer = torchvision.models.resnet18(num_classes=5).eval()
    model, report = convert_weights(peer.state_dict())
    assert report.source == "torchvision" and report.model == "resnet18"
    with torch.no_grad():
        torch.testing.assert_close(model(X), peer(X), atol=1e-4, rtol=0)


def test_cli_timm_file_read_as_caffe_port_is_refused_naming_the_layout(tmp_path, capsys):
    """A timm SE-ResNet-50 read with --from caffe-port loads without a renamed key into a model with the stride on
    the other convolution; it must be refused (the layout is read from the keys), not converted silently."""
    from safetensors.torch import save_file

    src = tmp_path / "seresnet50.safetensors"
    peer = random_peer("seresnet50")
    save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(src))
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(src), "--from", "caffe-port", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "timm layout" in err and "Traceback" not in err and not out.exists()
    assert main(["convert", str(src), "--out", str(out)]) == 0
    assert "timm layout" in capsys.readouterr().out
    with torch.no_grad():
        torch.testing.assert_close(load_model(out)(X), peer(X), atol=1e-4, rtol=0)


def test_senet_file_is_not_converted_again(tmp_path):
    model, report = convert_weights(random_peer("seresnet18").state_dict())
    path = save_converted(model, tmp_path / "m.safetensors", report)
    with pytest.raises(SenetError, match="already a senet model"):
        convert_weights(path)


def test_unknown_keys_are_refused():
    with pytest.raises(SenetError, match="cannot tell the layout"):
        convert_weights({"features.0.weight": torch.zeros(3, 3, 3, 3)})
