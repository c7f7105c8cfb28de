"""Constant replacement of SE blocks folded into the network (remove_se replace="mean"), and `senet prune`."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import senet
from senet.analysis.constant_fold import ChannelScale, FoldError
from senet.analysis.surgery import mean_excitations, remove_se

pytestmark = pytest.mark.usefixtures("one_thread")


def batches(n_batches=2, size=6, chans=1, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, chans, 28, 28, generator=g), torch.randint(0, classes, (size,), generator=g))
            for _ in range(n_batches)]


def trained_like(model: nn.Module) -> nn.Module:
    """Random BN statistics and affine parameters, so a scale folded into the wrong place shows in the output."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def gate_means_by_hand(model, loader, names):
    """s_c averaged over every image, read straight from the gates' outputs (no recorder involved)."""
    blocks = senet.named_se_blocks(model)
    sums, count, handles = {}, {"n": 0}, []
    for name in names:
        def hook(_m, _i, out, name=name):
            sums[name] = sums.get(name, 0) + out.detach().double().flatten(2).mean(2).sum(0)
        handles.append(blocks[name].gate.register_forward_hook(hook))
    with torch.no_grad():
        for x, _ in loader:
            model(x)
            count["n"] += len(x)
    for h in handles:
        h.remove()
    return {n: s / count["n"] for n, s in sums.items()}


def with_constant_gates(model, means):
    """The original model whose gates output the given constants: the definition of mean replacement."""
    blocks = senet.named_se_blocks(model)
    for name, s in means.items():
        blocks[name].gate.register_forward_hook(
            lambda _m, _i, out, s=s: s.to(out.dtype).view(1, -1, 1, 1).expand(out.shape[0], -1, *out.shape[2:]))
    return model


@pytest.fixture(scope="module")
def se20():
    torch.manual_seed(0)
    return trained_like(senet.create_model("se_resnet20", in_chans=1))


def test_mean_excitations_are_the_gate_outputs_averaged_over_images(se20):
    loader = batches()
    names = ["SE_2_1", "SE_4_3"]
    got = mean_excitations(se20, loader, names)
    want = gate_means_by_hand(se20, loader, names)
    for n in names:
        torch.testing.assert_close(got[n], want[n])
    assert float(got["SE_4_3"].min()) > 0 and float(got["SE_4_3"].max()) < 1


def test_mean_replacement_equals_the_model_with_constant_gates(se20):
    loader = batches()
    names = ["SE_3_2", "SE_4_1", "SE_4_3"]
    pruned = remove_se(se20, blocks=names, replace="mean", loader=loader)
    reference = with_constant_gates(trained_like(senet.create_model("se_resnet20", in_chans=1)),
                                    gate_means_by_hand(se20, loader, names))
    reference.load_state_dict(se20.state_dict())
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-5)
        # and identity replacement is a different model: the gates near 0.5 matter
        assert not torch.allclose(remove_se(se20, blocks=names).eval()(x), reference(x), atol=1e-3)
    assert list(senet.named_se_blocks(pruned)) == [n for n in senet.named_se_blocks(se20) if n not in names]
    positional = remove_se(se20, names, replace="mean", loader=loader)  # names in place of stages
    assert positional.senet_config == pruned.senet_config


def test_the_fold_scales_the_preceding_batchnorm_and_changes_nothing_else(se20):
    loader = batches()
    s = mean_excitations(se20, loader, ["SE_4_3"])["SE_4_3"].float()
    pruned = remove_se(se20, blocks=["SE_4_3"], replace="mean", loader=loader)
    unfolded = remove_se(se20, blocks=["SE_4_3"], replace="mean", means={"SE_4_3": s}, fold=False)
    assert isinstance(unfolded.layer3[2].se, ChannelScale) and not hasattr(unfolded, "senet_config")
    # standard position: U = BN(conv(...)), so U * s is BN with gamma * s and beta * s (in training mode too)
    bn_before, bn_after = se20.layer3[2].bn2, pruned.layer3[2].bn2
    torch.testing.assert_close(bn_after.weight, bn_before.weight * s)
    torch.testing.assert_close(bn_after.bias, bn_before.bias * s)
    changed = [k for k, v in pruned.state_dict().items() if not torch.equal(v, se20.state_dict()[k])]
    assert changed == ["layer3.2.bn2.weight", "layer3.2.bn2.bias"]
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(x), unfolded.eval()(x), rtol=1e-5, atol=1e-5)
        pruned.train(), unfolded.train()
        torch.testing.assert_close(pruned(x), unfolded(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("position,preact", [("standard", True), ("pre", False), ("after_3x3", False),
                                             ("after_3x3", True)])
def test_other_positions_fold_into_a_batchnorm_or_a_convolution(position, preact):
    extra = {"preact": True} if preact else {}
    model = trained_like(senet.create_model("se_resnet20", in_chans=1, se_position=position, **extra))
    names = ["SE_2_1", "SE_3_1", "SE_4_3"]
    loader = batches(1)
    means = gate_means_by_hand(model, loader, names)
    pruned = remove_se(model, blocks=names, replace="mean", loader=loader)
    assert senet.count_params(pruned) < senet.count_params(model)
    reference = with_constant_gates(model, means)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(x), reference(x), rtol=1e-4, atol=1e-5)


class TwoBranches(nn.Module):
    """An Inception-style module: two conv-BN-ReLU branches concatenated, then SE on the concatenation."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(1, 5, 1), nn.BatchNorm2d(5), nn.ReLU(inplace=True))
        self.se = senet.SqueezeExcite(8, 2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        return self.head(self.se(torch.cat([self.a(x), self.b(x)], 1)))


def test_a_concatenation_folds_each_part_into_its_own_batchnorm():
    model = trained_like(TwoBranches())
    loader = batches(1)
    s = gate_means_by_hand(model, loader, ["se"])["se"].float()
    pruned = remove_se(model, blocks=["se"], replace="mean", loader=loader)
    torch.testing.assert_close(pruned.a[1].weight, model.a[1].weight * s[:3])
    torch.testing.assert_close(pruned.b[1].bias, model.b[1].bias * s[3:])
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), with_constant_gates(model, {"se": s})(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["se_mobilenet_v1", "se_shufflenet_v1_g3"])
def test_other_families_fold(name):
    model = trained_like(senet.create_model(name, num_classes=4))
    names = list(senet.named_se_blocks(model))[-2:]
    loader = [(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))]
    means = gate_means_by_hand(model, loader, names)
    pruned = remove_se(model, blocks=names, replace="mean", loader=loader)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), with_constant_gates(model, means)(x), rtol=1e-4, atol=1e-4)
    assert pruned.senet_config["kwargs"]["se_removed"] == names


def test_notebook_model_folds_into_its_convolution_through_the_relu():
    model = senet.create_model("notebook_simple").eval()
    loader = batches(1)
    s = gate_means_by_hand(model, loader, ["se"])["se"].float()
    pruned = remove_se(model, blocks=["se"], replace="mean", loader=loader)
    torch.testing.assert_close(pruned.conv.weight, model.conv.weight * s.view(-1, 1, 1, 1))
    torch.testing.assert_close(pruned.conv.bias, model.conv.bias * s)
    assert senet.count_params(model) - senet.count_params(pruned) == sum(p.numel() for p in model.se.parameters())


def test_no_fold_where_the_scaled_map_is_used_twice_and_the_model_is_untouched():
    model = senet.create_model("notebook_se_residual").eval()  # x = SE(x) + x: scaling conv would change "+ x"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FoldError, match="cannot fold a constant in place of se: the map it scales is also used"):
        remove_se(model, blocks=["se"], replace="mean", loader=batches(1), inplace=True)
    assert isinstance(model.se, senet.SqueezeExcite)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    post = senet.create_model("se_resnet20", in_chans=1, se_position="post")
    with pytest.raises(FoldError, match="produced by add"):
        remove_se(post, blocks=["SE_3_2"], replace="mean", loader=batches(1))
    assert isinstance(remove_se(model, blocks=["se"]).se, nn.Identity)  # identity needs no fold


def test_replace_mode_and_means_are_checked(se20):
    with pytest.raises(ValueError, match="unknown replace='zero'; choose one of identity, mean"):
        remove_se(se20, blocks=["SE_4_3"], replace="zero")
    with pytest.raises(ValueError, match="needs loader="):
        remove_se(se20, blocks=["SE_4_3"], replace="mean")
    with pytest.raises(ValueError, match=r"lacks a \(64,\) vector for SE_4_3"):
        remove_se(se20, blocks=["SE_4_3"], replace="mean", means={"SE_4_3": torch.ones(3)})
    scse = senet.create_model("se_resnet20", in_chans=1, attn_layer="scse")
    with pytest.raises(ValueError, match="ChannelSpatialSE.*use replace='identity'"):
        remove_se(scse, blocks=["SE_4_3"], replace="mean", loader=batches(1))


def test_pruned_model_saves_loads_and_reports_lower_cost(se20, tmp_path):
    names = ["SE_2_2", "SE_4_3"]
    pruned = remove_se(se20, blocks=names, replace="mean", loader=batches(1))
    assert pruned.senet_config == {"name": "se_resnet20", "kwargs": {"in_chans": 1, "se_removed": names}}
    senet.save_model(pruned, tmp_path / "p")
    loaded = senet.load_model(tmp_path / "p")
    assert list(senet.named_se_blocks(loaded)) == list(senet.named_se_blocks(pruned))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned.eval()(x))
    before, after = (senet.model_complexity(m, (1, 28, 28)) for m in (se20, loaded))
    se_cost = sum(p.numel() for n in names for p in senet.named_se_blocks(se20)[n].parameters())
    assert before["params"] - after["params"] == se_cost
    assert after["macs"] < before["macs"]
    # a second pruning of the loaded model adds to the list; whole stages use the builder's own se_stages
    again = remove_se(loaded, blocks=["SE_3_1"], replace="mean", loader=batches(1))
    assert again.senet_config["kwargs"]["se_removed"] == [*names, "SE_3_1"]
    stage = remove_se(se20, stages=[4], replace="mean", loader=batches(1))
    assert stage.senet_config["kwargs"] == {"in_chans": 1, "se_stages": [2, 3]}


def test_create_model_se_removed_names_unknown_blocks():
    with pytest.raises(senet.ConfigError, match="has no SE block.*SE_9_1 to remove; it has SE_2_1"):
        senet.create_model("se_resnet20", se_removed=["SE_9_1"])


def test_pruned_model_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    model = senet.create_model("notebook_simple").eval()
    pruned = remove_se(model, blocks=["se"], replace="mean", loader=batches(1))
    result = senet.export_model(pruned, tmp_path / "p.onnx", input_size=(1, 28, 28))
    import numpy as np
    import onnxruntime as ort

    x = torch.randn(1, 1, 28, 28)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, pruned(x).numpy(), rtol=1e-4, atol=1e-4)


# ---- choosing blocks and `senet prune` -------------------------------------------------------------------------

SYNTH = "synthetic:classes=3,size=28,chans=1,train=90,val=30,test=24"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = trained_like(senet.create_model("se_resnet20", in_chans=1, num_classes=3))
    out = tmp_path_factory.mktemp("run") / "se20"
    senet.save_model(model, out, extra={"dataset": {"name": SYNTH, "num_classes": 3, "in_chans": 1},
                                        "class_names": ["a", "b", "c"], "train_config": {"seed": 3}})
    return out


def test_rank_blocks_puts_class_agnostic_steady_blocks_first():
    from senet.analysis.prune import rank_blocks

    metrics = {"SE_2_1": {"class_specificity": 0.02, "within_class_std": 0.10},
               "SE_3_1": {"class_specificity": 0.50, "within_class_std": 0.01},
               "SE_4_1": {"class_specificity": 0.01, "within_class_std": 0.02},
               "SE_4_2": {"class_specificity": 0.90, "within_class_std": 0.30}}
    # ranks (spec + spread): SE_4_1 0+1, SE_2_1 1+2, SE_3_1 2+0 (tie with SE_2_1: the deeper block first), SE_4_2
    assert rank_blocks(metrics) == ["SE_4_1", "SE_3_1", "SE_2_1", "SE_4_2"]


def test_heldout_split_is_the_runs_own_validation_part_never_test():
    from senet.analysis.prune import heldout_split
    from senet.data import load_dataset
    from senet.errors import ConfigError

    bundle = load_dataset("synthetic:classes=3,size=8,chans=1,train=200,val=10,test=12", augment=False)
    fit, val = heldout_split(bundle)
    assert fit is bundle.train and val is bundle.val and val is not bundle.test
    with pytest.raises(ConfigError, match="no val split"):
        heldout_split(dataclasses.replace(bundle, val=None))  # a run that held nothing out (val_split=0)

def test_greedy_keeps_each_removal_only_within_the_budget(monkeypatch, se20):
    from senet.analysis import prune

    cost = {"SE_4_3": 0.1, "SE_4_2": 0.5, "SE_4_1": 0.15, "SE_3_3": 0.05}
    everything = set(senet.named_se_blocks(se20))

    def fake_top1(model, loader, device="cpu", channels_last=False):
        gone = everything - set(senet.named_se_blocks(model))
        return 90.0 - sum(cost[b] for b in gone)

    monkeypatch.setattr(prune, "top1", fake_top1)
    result = prune.greedy_prune(se20, batches(1), order=list(cost), replace="identity", max_drop=0.3)
    # SE_4_3 (-0.1) in; SE_4_2 would make -0.6: out; SE_4_1 makes -0.25: in; SE_3_3 would make -0.3: in (at the edge)
    assert result.removed == ["SE_4_3", "SE_4_1", "SE_3_3"]
    assert [s.kept for s in result.steps] == [True, False, True, True]
    assert result.val_top1_before == 90.0 and result.val_top1_after == pytest.approx(89.7)
    assert set(senet.named_se_blocks(result.model)) == everything - set(result.removed)
    by_hand = prune.greedy_prune(se20, batches(1), order=["SE_4_2"], replace="identity", max_drop=None)
    assert by_hand.removed == ["SE_4_2"]  # chosen by hand: removed whatever it costs


def test_prune_run_writes_a_loadable_run_and_a_report(run_dir, tmp_path):
    import json

    from senet.analysis.prune import prune_run
    from senet.train import evaluate

    out = tmp_path / "pruned"
    summary = prune_run(run_dir, out, blocks=["SE_4_3", "SE_2_1"], replace="mean", batch_size=16,
                        fit_per_class=10, latency_repeats=2, log=lambda _m: None)
    assert summary["removed"] == ["SE_4_3", "SE_2_1"]
    assert summary["images"] == {"statistics": 30, "validation": 30, "test": 24}  # the run's val and test splits
    assert summary["cost"]["after"]["params"] < summary["cost"]["before"]["params"]
    assert summary["cost"]["after"]["macs"] < summary["cost"]["before"]["macs"]
    assert summary["latency"]["original_ms"] > 0 and summary["latency"]["ratio"] > 0
    doc = json.loads((out / "config.json").read_text())
    assert doc["model"]["kwargs"]["se_removed"] == ["SE_4_3", "SE_2_1"] and doc["dataset"]["name"] == SYNTH
    assert doc["pruned"] == {"from": str(run_dir), "replace": "mean", "removed": ["SE_4_3", "SE_2_1"]}
    assert json.loads((out / "report.json").read_text())["removed"] == ["SE_4_3", "SE_2_1"]
    md = (out / "report.md").read_text()
    assert "| parameters |" in md and "forward time" in md and "test top-1 (24 images" in md
    result = evaluate(out, split="test", out=tmp_path / "eval")
    assert result["top1"] == pytest.approx(summary["test_top1"]["after"] / 100)
    result = evaluate(out, split="val", out=tmp_path / "eval_val")
    assert result["top1"] == pytest.approx(summary["val_top1"]["after"] / 100)
    with pytest.raises(senet.SenetError, match="already holds a model: pass --overwrite"):
        prune_run(run_dir, out, blocks=["SE_4_3"], log=lambda _m: None)


def test_senet_prune_cli_chooses_blocks_and_reports(run_dir, tmp_path, capsys):
    from senet.cli import main

    out = tmp_path / "auto"
    assert main(["prune", str(run_dir), "--out", str(out), "--max-drop", "100", "--batch-size", "16"]) == 0
    text = capsys.readouterr().out
    assert "removed 9 SE block(s)" in text and "forward time x" in text
    assert senet.named_se_blocks(senet.load_model(out)) == {}
    assert main(["prune", str(run_dir), "--out", str(tmp_path / "hand"), "--blocks", "SE_4_3", "SE_2_1",
                 "--max-drop", "0", "--replace", "identity", "--batch-size", "16"]) == 0
    import json

    report = json.loads((tmp_path / "hand" / "report.json").read_text())
    assert report["max_drop"] == 0.0 and [s["block"] for s in report["steps"]] == ["SE_4_3", "SE_2_1"]
    before = report["val_top1"]["before"]
    kept = [s["block"] for s in report["steps"] if s["kept"]]
    assert all(s["kept"] == (s["val_top1"] >= before - 1e-9) for s in report["steps"])
    assert report["removed"] == kept
    capsys.readouterr()
    assert main(["prune", str(run_dir), "--out", str(tmp_path / "x"), "--blocks", "SE_9_9"]) == 2
    assert "senet: error: unknown SE block(s) SE_9_9; this model has SE_2_1" in capsys.readouterr().err
