"""The analysis pipeline, its report and charts, block/class selection, and remove_se."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import senet
from senet.analysis import (
    analyze_excitations,
    compare_without_se,
    paper_blocks,
    resolve_classes,
    sample_channels,
    write_charts,
    write_report,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread

PAPER_50 = [f"SE_2_{i}" for i in range(1, 4)] + [f"SE_3_{i}" for i in range(1, 5)] + \
           [f"SE_4_{i}" for i in range(1, 7)] + [f"SE_5_{i}" for i in range(1, 4)]


def test_paper_block_choice_for_se_resnet50():
    assert paper_blocks(PAPER_50) == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]
    assert paper_blocks(["se"]) == ["se"]
    assert paper_blocks([f"b{i}" for i in range(11)]) == ["b0", "b2", "b4", "b6", "b8", "b10"]


def test_classes_by_name_or_index_and_errors_list_valid_ones():
    names = ["T-shirt/top", "Trouser", "Bag", "Ankle boot"]
    assert resolve_classes("Bag,0,ankle boot", names, 4) == [2, 0, 3]
    assert resolve_classes(None, names, 4) == [0, 1, 2, 3]
    assert resolve_classes(None, None, 10) == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="Sandal.*valid: 0=T-shirt/top, 1=Trouser"):
        resolve_classes("Sandal", names, 4)
    with pytest.raises(ValueError, match="unknown class"):
        resolve_classes("7", names, 4)


def test_channel_sampling_is_uniform_and_capped():
    assert sample_channels(32).tolist() == list(range(32))
    picked = sample_channels(2048)
    assert len(picked) == 50 and picked[0] == 0 and picked[-1] == 2047
    assert max(picked[1:] - picked[:-1]) - min(picked[1:] - picked[:-1]) <= 1


def small_data(per_class: int = 12, classes: int = 3):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.rand(len(y), 1, 28, 28, generator=g) + y.view(-1, 1, 1, 1) * 0.5
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return senet.create_model("se_resnet20", num_classes=3, in_chans=1).eval()


def test_pipeline_report_and_charts(resnet, tmp_path):
    data = small_data()
    report = analyze_excitations(resnet, data, num_classes=3, class_names=["a", "b", "c"], classes="c,a",
                                 per_class=20, batch_size=16)
    assert report.images_per_class == [12, 12, 12]
    assert "used all of them" in report.notes[0] and "a: 12" in report.notes[0]
    assert report.chosen_blocks == ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]
    assert report.classes == [2, 0]
    files = {**write_report(report, tmp_path), **write_charts(report, tmp_path)}
    doc = json.loads(files["json"].read_text())
    assert [b["block"] for b in doc["blocks"]] == list(senet.named_se_blocks(resnet))
    assert doc["images"] == 36 and doc["chart_classes"] == ["c", "a"]
    assert len(doc["class_means"]["SE_4_3"]["c"]) == 64
    rows = list(csv.DictReader(files["csv"].open()))
    assert rows[0]["block"] == "SE_2_1" and rows[0]["stage"] == "2" and 0 <= float(rows[0]["class_specificity"]) <= 1
    for key in ("fig6", "fig7", "depth"):
        assert files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pipeline_rejects_unknown_blocks_and_models_without_se(resnet):
    with pytest.raises(ValueError, match="SE_9_1.*valid: SE_2_1, SE_2_2"):
        analyze_excitations(resnet, small_data(), num_classes=3, blocks="SE_9_1")
    with pytest.raises(ValueError, match="no SE blocks"):
        analyze_excitations(nn.Sequential(nn.Conv2d(1, 2, 3)), small_data(), num_classes=3)


def test_remove_se_stage_updates_config_and_round_trips(resnet, tmp_path):
    smaller = senet.remove_se(resnet, stages=[4])
    assert list(senet.named_se_blocks(smaller)) == [f"SE_{s}_{b}" for s in (2, 3) for b in (1, 2, 3)]
    assert list(senet.named_se_blocks(resnet))[-1] == "SE_4_3"  # the original is untouched
    saved = sum(p.numel() for blk in list(senet.named_se_blocks(resnet).values())[-3:] for p in blk.parameters())
    assert senet.count_params(resnet) - senet.count_params(smaller) == saved > 0
    assert smaller.senet_config["kwargs"]["se_stages"] == [2, 3]
    senet.save_model(smaller, tmp_path / "m")
    reloaded = senet.load_model(tmp_path / "m")
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(reloaded(x), smaller.eval()(x))
    bare = senet.remove_se(resnet, stages=(2, 3, 4))
    assert bare.senet_config["kwargs"]["attn_layer"] is None and not senet.named_se_blocks(bare)


def test_remove_se_errors_and_non_resnet_models():
    model = senet.create_model("notebook_simple")
    with pytest.raises(ValueError, match="pass blocks="):
        senet.remove_se(model, stages=[2])
    with pytest.raises(ValueError, match="unknown SE block.*this model has se"):
        senet.remove_se(model, blocks=["SE_2_1"])
    plain = senet.remove_se(model, blocks=["se"])
    assert isinstance(plain.se, nn.Identity)
    assert plain.senet_config == {"name": "notebook_simple", "kwargs": {"se_removed": ["se"]}}
    assert not hasattr(senet.remove_se(nn.Sequential(senet.SqueezeExcite(4, 2)), blocks=["0"]), "senet_config")
    with pytest.raises(ValueError, match="stages \\[2, 3, 4\\]"):
        senet.remove_se(senet.create_model("se_resnet20"), stages=[5])


def test_compare_without_se_reports_accuracy_and_parameters(resnet):
    loader = torch.utils.data.DataLoader(small_data(), batch_size=16)
    out = compare_without_se(resnet, loader, 4)
    assert out["removed_blocks"] == ["SE_4_1", "SE_4_2", "SE_4_3"] and out["images"] == 36
    assert out["param_saving"] == out["with_se"]["params"] - out["without_se"]["params"] > 0
    assert out["without_se"]["se_increase_pct"] < out["with_se"]["se_increase_pct"]
    assert out["top1_change"] == pytest.approx(out["without_se"]["top1"] - out["with_se"]["top1"])
    assert "top5_change" not in out  # only 3 classes


def test_models_from_add_se_are_recorded_and_pruned():
    import torchvision

    model = senet.add_se(torchvision.models.resnet18(num_classes=3)).eval()
    names = list(senet.analysis.channel_gates(model))
    assert names == [f"SE_{s}_{b}" for s in (2, 3, 4, 5) for b in (1, 2)]
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    with senet.analysis.ExcitationRecorder(model, num_classes=3) as rec:
        rec.record(x, y)
    assert rec.stats()["SE_5_2"].mean.shape == (3, 512)
    smaller = senet.remove_se(model, stages=[5])
    assert list(senet.named_se_blocks(smaller))[-1] == "SE_4_2"
    assert smaller(x).shape == (6, 3)


def test_logits_that_do_not_match_the_dataset_classes_are_refused(resnet):
    # se_resnet20 with 3 outputs on data labelled with 4 classes: the numbers would be silently wrong
    with pytest.raises(senet.SenetError, match=r"outputs \(3,\) scores per image but the dataset has 4 classes"):
        analyze_excitations(resnet, small_data(per_class=2, classes=4), num_classes=4)


def test_run_analysis_checks_the_model_config_against_the_bundle(resnet, tmp_path):
    from senet.analysis import run_analysis
    from senet.data import load_dataset

    bundle = load_dataset("synthetic:classes=5,size=28,chans=1,train=4,val=10", augment=False)
    with pytest.raises(senet.SenetError, match=r"built for num_classes=3 but 'synthetic.*' has num_classes=5"):
        run_analysis(resnet, bundle, tmp_path)
    bundle = load_dataset("synthetic:classes=3,size=28,chans=3,train=4,val=10", augment=False)
    with pytest.raises(senet.SenetError, match=r"built for in_chans=1 but .* has in_chans=3"):
        run_analysis(resnet, bundle, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_eval_images_without_drop_se_stage_is_an_error(resnet, tmp_path):
    from senet.analysis import run_analysis
    from senet.data import load_dataset

    bundle = load_dataset("synthetic:classes=3,size=28,chans=1,train=4,val=10", augment=False)
    with pytest.raises(ValueError, match="--eval-images needs --drop-se-stage"):
        run_analysis(resnet, bundle, tmp_path, eval_images=5)


def test_one_parser_for_paper_block_names():
    from senet.analysis.report import report_rows
    from senet.analysis.surgery import se_stage_of
    from senet.models.naming import parse_se_block_name

    assert parse_se_block_name("SE_5_2") == (5, 2) and parse_se_block_name("SE_12_30") == (12, 30)
    for other in ("layer1.0.se", "SE_5", "SE_5_2_1", "SE_a_1", "xSE_5_2", "SE_5_2.se"):
        assert parse_se_block_name(other) is None and se_stage_of(other) is None
    report = type("R", (), {"blocks": ["SE_3_1", "features.4.se"],
                            "metrics": {n: {k: 0.0 for k in ("channels", "images", *senet.analysis.METRIC_NAMES)}
                                        for n in ("SE_3_1", "features.4.se")}})()
    assert [r["stage"] for r in report_rows(report)] == [3, None]
