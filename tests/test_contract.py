"""Every registered model fits timm's model contract, traces with torch.fx and exports with torch.export.

Expected values come from outside the code under test: output shapes from the model's declared widths and
strides (``feature_info`` is checked against real maps), traced graphs against eager outputs, timm's own models
for the timm-named aliases, torchvision's feature extractor for node names. Models with tens of millions of
parameters run on the meta device (shapes only) so the file stays fast on two cores; every family still has a
light member that runs for real.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import senet
from senet.errors import ConfigError
from senet.models import create_model, list_models

MODELS = list_models()
#: Run for real: one light member of each family and kind of unit (basic, bottleneck, ResNeXt, pre-activation,
#: Inception, depthwise, shuffle, notebook). Every other model is checked on the meta device (shapes, traces), where
#: building and running it costs no arithmetic; the code paths are the same.
REAL = ["se_resnet8", "se_wrn16_8", "seresnet18", "se_bn_inception", "se_mobilenet_v1", "se_shufflenet_v1_g3",
        "notebook_se_residual"]
#: The slower torch.export check: a sample of the families (every model traces with fx, and export traces the
#: same Python).
EXPORT_SAMPLE = ["se_resnet8", "se_shufflenet_v1_g3", "notebook_se_residual"]


def small_input(model: nn.Module, batch: int = 2, device: str = "cpu") -> torch.Tensor:
    """The smallest comfortable input: the model's minimum side (at least 32 where nothing is declared)."""
    side = model.min_input_size if model.exact_input_size else max(model.min_input_size, 32)
    if model.min_input_size == 4:  # CIFAR nets: 16 x 16 is enough for three stages
        side = 16
    return torch.randn(batch, model.in_chans, side, side, device=device)


def build(name: str, meta: bool = False, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    if meta:
        with torch.device("meta"):
            return create_model(name, **kwargs)
    return create_model(name, **kwargs)


def expected_side(side: int, reduction: int, name: str) -> set[int]:
    """ceil(side / reduction) for padded networks; Inception-ResNet-v2's unpadded stem gives a little less."""
    full = math.ceil(side / reduction)
    return set(range(max(1, full - 3), full + 1)) if "inception_resnet" in name else {full}


@pytest.mark.parametrize("name", MODELS)
def test_contract_attributes_and_head(name):
    """On the meta device: widths and head shapes from the declared ``num_features`` and classifier."""
    model = build(name, meta=True)
    x = small_input(model, device="meta")
    assert model.num_classes == model.get_classifier().out_features
    feats = model.forward_features(x)
    assert feats.shape[:2] == (2, model.num_features)
    assert model.forward_head(feats).shape == (2, model.num_classes)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.get_classifier().in_features)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.num_classes == 5 and model.senet_config["kwargs"]["num_classes"] == 5
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity) and model(x).shape == pre.shape


@pytest.mark.parametrize("name", MODELS)
def test_feature_maps_match_feature_info(name):
    meta = name != "se_resnet8"  # shapes need no arithmetic; one backbone runs for real
    model = build(name, meta=meta, features_only=True)
    x = small_input(model, device="meta" if meta else "cpu")
    maps = model(x)
    info = model.feature_info
    assert len(maps) == len(info) == len(model.feature_info.channels()) >= 2
    for m, c, r in zip(maps, info.channels(), info.reduction()):
        assert m.shape[1] == c
        assert m.shape[2] in expected_side(x.shape[2], r, name) and m.shape[3] in expected_side(x.shape[3], r, name)
    if not meta:  # a backbone has no dead weights: every parameter gets a gradient
        sum(m.float().mean() for m in maps).backward()
        assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", REAL)
def test_forward_backward_and_intermediates_agree_with_the_classifier(name):
    model = build(name).train()
    x = small_input(model)
    out = model(x)
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        backbone = build(name, features_only=True, out_indices=[0, -1])
        backbone.load_state_dict(model.state_dict(), strict=False)
        picked = backbone.eval()(x)
        assert len(picked) == 2
        torch.testing.assert_close(picked[0], maps[0])
        torch.testing.assert_close(picked[1], maps[-1])
        only = model.forward_intermediates(x, indices=1, intermediates_only=True)
        torch.testing.assert_close(only[0], maps[-1])


@pytest.mark.parametrize("name", REAL)
def test_fx_trace_equals_eager(name):
    model = build(name).eval()
    x = small_input(model)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in MODELS if n not in REAL])
def test_fx_traces_every_other_model_on_the_meta_device(name):
    """Tracing needs no data: every model traces, with one graph node per SE gate of ``feature_info``."""
    model = build(name, meta=True)
    graph = torch.fx.symbolic_trace(model).graph
    gates = [n for n in graph.nodes if n.op == "call_module" and str(n.target).endswith("se.gate")]
    assert len(gates) == sum(len(b) for b in model.feature_info.se_blocks())


@pytest.mark.parametrize("name", EXPORT_SAMPLE)
def test_torch_export_equals_eager(name):
    model = build(name).eval()
    x = small_input(model)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODELS if n not in EXPORT_SAMPLE])
def test_torch_export_traces_every_other_model_on_the_meta_device(name):
    """torch.export needs no data either: every registered model exports, and the exported program gives the
    classifier's output shape."""
    model = build(name, meta=True).eval()
    x = small_input(model, device="meta")
    exported = torch.export.export(model, (x,))
    assert exported.module()(x).shape == (x.shape[0], model.num_classes)


def test_torch_export_of_a_backbone_returns_the_stage_maps():
    model = build("se_resnet8", features_only=True, in_chans=1).eval()
    x = torch.randn(2, 1, 16, 16)
    out = torch.export.export(model, (x,)).module()(x)
    for a, b in zip(out, model(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["se_resnet8", "se_shufflenet_v1_g3", "notebook_se_residual"])
def test_state_dict_round_trip(name):
    a, b = build(name).eval(), create_model(name).eval()  # b: other random weights
    b.load_state_dict(a.state_dict(), strict=True)
    x = small_input(a)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)


def test_save_and_load_rebuild_a_reset_head_and_a_backbone(tmp_path: Path):
    model = build("se_resnet8", in_chans=1).eval()
    model.reset_classifier(3)
    senet.save_model(model, tmp_path / "reset")
    loaded = senet.load_model(tmp_path / "reset").eval()
    x = torch.randn(2, 1, 16, 16)
    assert loaded.get_classifier().out_features == 3
    torch.testing.assert_close(loaded(x), model(x))
    backbone = build("se_resnet8", in_chans=1, features_only=True, out_indices=(1, 2)).eval()
    senet.save_model(backbone, tmp_path / "backbone")
    again = senet.load_model(tmp_path / "backbone").eval()
    assert again.feature_info.channels() == [32, 64]
    for p, q in zip(again(x), backbone(x)):
        torch.testing.assert_close(p, q)


def test_feature_info_names_the_se_blocks_of_each_stage():
    info = build("se_resnet50", meta=True).feature_info
    assert info.module_name() == ["layer1", "layer2", "layer3", "layer4"]
    assert info.reduction() == [4, 8, 16, 32] and info.channels() == [256, 512, 1024, 2048]
    assert info.se_blocks(0) == ["SE_2_1", "SE_2_2", "SE_2_3"] and info.se_blocks(3) == ["SE_5_1", "SE_5_2", "SE_5_3"]
    mobile = build("se_mobilenet_v1", meta=True).feature_info
    assert mobile.se_blocks(1) == ["blocks.1.se", "blocks.2.se"]


def test_torchvision_feature_extractor_returns_stage_maps_and_se_gates_by_node_name():
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = build("se_resnet50").eval()
    nodes = {f"layer{i}": f"stage{i}" for i in range(1, 5)} | {"layer3.1.se.gate": "gate_3_2"}
    assert "layer3.1.se.gate" in get_graph_node_names(model)[1]  # a stage name means its module's last node
    extractor = create_feature_extractor(model, return_nodes=nodes)
    x = torch.randn(1, 3, 32, 32)
    seen = {}
    model.layer3[1].se.gate.register_forward_hook(lambda m, i, o: seen.setdefault("gate", o))
    with torch.no_grad():
        out = extractor(x)
        model(x)
    assert [tuple(out[f"stage{i}"].shape) for i in range(1, 5)] == [(1, 256, 8, 8), (1, 512, 4, 4),
                                                                    (1, 1024, 2, 2), (1, 2048, 1, 1)]
    torch.testing.assert_close(out["gate_3_2"], seen["gate"])
    assert out["gate_3_2"].shape == (1, 1024, 1, 1)


@pytest.mark.parametrize("bad, message", [
    (torch.randn(1, 1, 32, 32), r"se_resnet18 expects input of shape \(N, 3, H, W\) \(3 channels\); received"),
    (torch.randn(1, 3, 16, 16), r"se_resnet18: input 16x16 is too small.*minimum is 32x32"),
])
def test_input_checks_are_one_line_config_errors_in_eager_and_traced_models(bad, message):
    model = build("se_resnet18", meta=False).eval()
    traced = torch.fx.symbolic_trace(model)
    for m in (model, traced):
        with pytest.raises(ConfigError, match=message) as err:
            m(bad)
        assert "\n" not in str(err.value)


def test_stage_index_errors_name_the_range():
    with pytest.raises(ConfigError, match=r"out of range: this model has 3 stages"):
        build("se_resnet8", features_only=True, out_indices=[3])
    with pytest.raises(ConfigError, match="out_indices only applies with features_only=True"):
        build("se_resnet8", out_indices=[0])
    with pytest.raises(ConfigError, match="output_fmt='NHWC' is not supported"):
        build("se_resnet8").forward_intermediates(torch.randn(1, 3, 8, 8), output_fmt="NHWC")


def test_reset_classifier_keeps_device_and_dtype_and_refuses_bad_counts():
    model = build("se_resnet8").double()
    model.reset_classifier(7)
    assert model.fc.weight.dtype == torch.float64
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 0"):
        model.reset_classifier(-1)


# --- timm's names ---------------------------------------------------------------------------------------------
TIMM_ALIASES = ["seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152", "seresnext50_32x4d",
                "seresnext101_32x4d"]
#: Compared for real (outputs equal to timm's); the others by keys and shapes on the meta device (same builder).
TIMM_RUN = {"seresnet18", "seresnext50_32x4d"}


@pytest.mark.parametrize("name", TIMM_ALIASES)
def test_timm_alias_builds_timms_architecture(name):
    timm = pytest.importorskip("timm")
    meta = name not in TIMM_RUN
    torch.manual_seed(0)
    if meta:
        with torch.device("meta"):
            theirs = timm.create_model(name, pretrained=False)
    else:
        theirs = timm.create_model(name, pretrained=False)
    ours = build(name, meta=meta)
    want = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == want
    if meta:
        return
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.eval(), ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = theirs(x)
        assert expected.std() > 0
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.forward_features(x), theirs.forward_features(x), rtol=1e-5, atol=1e-5)


# --- torch.hub ------------------------------------------------------------------------------------------------
def test_torch_hub_loads_every_model_from_the_checkout_offline():
    repo = str(Path(__file__).resolve().parents[1])
    model = torch.hub.load(repo, "se_resnet8", source="local", in_chans=1, num_classes=4)
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 4)
    import runpy

    entrypoints = runpy.run_path(str(Path(repo) / "hubconf.py"))
    assert set(MODELS) <= set(entrypoints) and entrypoints["dependencies"] == ["torch", "torchvision"]
    with pytest.raises(ConfigError, match="no pretrained weights ship for 'se_resnet50'"):
        torch.hub.load(repo, "se_resnet50", source="local", pretrained=True)


def test_retrofitted_torchvision_resnet_traces_and_extracts_its_se_gates():
    """``add_se`` on torchvision's ResNet keeps torchvision's contract (its own ``fc``) and traces like ours."""
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.feature_extraction import create_feature_extractor

    torch.manual_seed(0)
    model = senet.add_se(torchvision.models.resnet18(num_classes=4)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x), rtol=0, atol=0)
        out = create_feature_extractor(model, {"layer2": "c3", "layer4.1.se.gate": "s"})(x)
    assert out["c3"].shape == (1, 128, 4, 4) and out["s"].shape == (1, 512, 1, 1)
    assert ((out["s"] > 0) & (out["s"] < 1)).all()
