"""`senet evaluate DIR`: metrics of a saved run rebuilt from its folder alone, confusion PNG, JSON output."""

from __future__ import annotations

import json

import pytest

from senet.cli import main
from senet.errors import SenetError
from senet.train import evaluate, train

DATA = "synthetic:train=128,val=60"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    train({"model": "notebook_simple", "data": DATA, "epochs": 1, "batch_size": 32, "lr": 0.05, "progress": False,
           "out": str(out)})
    return out


def test_evaluate_matches_the_last_epoch_and_writes_files(run_dir):
    result = evaluate(run_dir)  # dataset taken from the run's config.json
    last = json.loads((run_dir / "config.json").read_text())["metrics"]
    assert result["count"] == 60
    assert result["top1"] == pytest.approx(last["val_top1"]) and result["loss"] == pytest.approx(last["val_loss"])
    assert 0.0 <= result["top1"] <= result["top5"] <= 1.0
    assert len(result["per_class"]) == 10 and sum(map(sum, result["confusion"])) == 60
    correct = sum(result["confusion"][i][i] for i in range(10))
    assert correct / 60 == pytest.approx(result["top1"])
    png = run_dir / "eval_synthetic_train_128_val_60" / "confusion.png"
    assert result["confusion_png"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((png.parent / "metrics.json").read_text())["top1"] == result["top1"]


def test_cli_json_prints_fractions(run_dir, capsys, tmp_path):
    assert main(["evaluate", str(run_dir / "best"), "--data", DATA, "--json", "--out", str(tmp_path / "e")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"top1", "top5", "loss", "per_class"} <= doc.keys() and 0 <= doc["top1"] <= 1
    assert (tmp_path / "e" / "confusion.png").exists()


def test_data_that_does_not_fit_the_model_is_refused(run_dir, capsys):
    with pytest.raises(SenetError, match="num_classes=10"):
        evaluate(run_dir, "synthetic:classes=4,train=16,val=16")
    assert main(["evaluate", str(run_dir.parent / "nowhere")]) == 2
    assert "no such" in capsys.readouterr().err


def test_cli_device_and_compile_reach_the_model(run_dir, tmp_path, capsys, monkeypatch):
    import torch

    from senet.train import loop

    compiled, formats = [], []
    real_loader = loop.evaluate_loader

    def fake_compile(model, **kw):
        compiled.append(model)
        return model

    def recording_loader(model, *args, **kw):
        formats.append((kw["channels_last"], str(kw["device"])))
        return real_loader(model, *args, **kw)

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(loop, "evaluate_loader", recording_loader)
    assert main(["evaluate", str(run_dir), "--device", "cpu", "--compile", "--json", "--out", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(compiled) == 1 and doc["compiled"] and doc["device"] == "cpu"
    assert formats == [(False, "cpu")]  # the run trained without channels_last
    assert main(["evaluate", str(run_dir), "--device", "nonsense"]) == 2
    assert "unknown device 'nonsense'" in capsys.readouterr().err


def test_channels_last_is_used_when_the_run_trained_with_it(tmp_path, monkeypatch):
    import torch

    from senet.train import loop

    out = tmp_path / "cl"
    data = "synthetic:chans=3,size=16,train=64,val=32"  # 3 channels: channels-last strides differ from NCHW
    trained = train({"model": "notebook_simple", "data": data, "epochs": 1, "batch_size": 32, "lr": 0.05,
                     "progress": False, "channels_last": True, "out": str(out)})
    seen = []
    real_loader = loop.evaluate_loader

    def recording_loader(model, *args, **kw):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        seen.append((kw["channels_last"], conv.weight.is_contiguous(memory_format=torch.channels_last)))
        return real_loader(model, *args, **kw)

    monkeypatch.setattr(loop, "evaluate_loader", recording_loader)
    result = evaluate(out, device="cpu", out=tmp_path / "e")
    assert seen == [(True, True)] and result["channels_last"]
    assert result["top1"] == pytest.approx(trained.final["val_top1"])


def test_fold_bn_gives_the_same_metrics_and_leaves_the_saved_model_alone(tmp_path, capsys):
    data = "synthetic:classes=4,size=16,train=64,val=48"
    out = tmp_path / "run"
    train({"model": "se_resnet8", "data": data, "epochs": 1, "batch_size": 32, "lr": 0.05, "progress": False,
           "out": str(out)})
    weights = out / "model.safetensors"
    before = weights.read_bytes()
    plain = evaluate(out, out=tmp_path / "plain")
    folded = evaluate(out, fold_bn=True, out=tmp_path / "folded")
    assert plain["bn_folded"] == 0 and folded["bn_folded"] == 9  # stem + 2 per unit x 3 units + 2 downsamples
    # Folding changes only float rounding: at most a near-tie among 48 images may flip.
    assert abs(folded["top1"] - plain["top1"]) <= 1 / 48
    assert folded["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    assert weights.read_bytes() == before
    capsys.readouterr()
    assert main(["evaluate", str(out), "--fold-bn", "--json", "--out", str(tmp_path / "cli")]) == 0
    assert json.loads(capsys.readouterr().out)["bn_folded"] == 9
