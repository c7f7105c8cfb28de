"""`senet compare`: same recipe and seeds per model, a table, report.md, curves.png, normal run folders."""

from __future__ import annotations

import json

import pytest

from senet.cli import main
from senet.errors import ConfigError, SenetError
from senet.train import compare, evaluate
from senet.train.config import make_config

MODELS = "notebook_simple,notebook_se_residual"
RECIPE = {"data": "synthetic:train=64,val=32", "epochs": 2, "batch_size": 32, "lr": 0.05, "progress": False}


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return compare(MODELS, RECIPE, seeds=2, out=out), out


def test_report_table_and_curves(summary):
    result, out = summary
    names = [m["model"] for m in result["models"]]
    assert names == ["notebook_simple", "notebook_se_residual"]
    for m in result["models"]:
        assert m["params"] == 9227 and m["macs"] > 0 and len(m["top1"]) == 2
        assert m["top1_mean"] == pytest.approx(sum(m["top1"]) / 2) and m["images_per_s"] > 0
    report = (out / "report.md").read_text()
    assert "| notebook_se_residual | 9,227 |" in report and "±" in report and "curves.png" in report
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "summary.json").read_text())["seeds"] == 2
    (diff,) = json.loads((out / "summary.json").read_text())["differences"]
    base, se = (m["top1"] for m in result["models"])
    assert diff["model"] == "notebook_se_residual" and diff["baseline"] == "notebook_simple" and diff["seeds"] == 2
    assert diff["top1_difference"] == pytest.approx(((se[0] - base[0]) + (se[1] - base[1])) / 2)
    low, high = diff["ci95"]
    assert low <= diff["top1_difference"] <= high and diff["decided"] == (low > 0 or high < 0)
    assert f"Paired by seed, test top-1: {diff['verdict']}." in report


def test_each_run_is_a_normal_train_folder_with_its_own_seed(summary):
    result, out = summary
    a, b = (json.loads((out / "notebook_simple" / s / "config.json").read_text()) for s in ("seed0", "seed1"))
    assert (a["train_config"]["seed"], b["train_config"]["seed"]) == (0, 1)
    # The table's accuracy: the selected model (best/, chosen on validation) on the test split, evaluated once;
    # its validation top-1 is reported beside it. Both are reproduced by `senet evaluate` on best/.
    row, best = result["models"][0], out / "notebook_simple" / "seed1" / "best"
    assert evaluate(best, split="test")["top1"] == pytest.approx(row["top1"][1])
    assert evaluate(best, split="val")["top1"] == pytest.approx(row["val_top1"][1])
    report = (out / "report.md").read_text()
    assert "| val top-1 % | test top-1 % (mean ± std) | test top-5 % |" in report and "evaluated once" in report


def test_rerun_is_refused_and_resume_reuses_finished_runs(summary, capsys):
    result, out = summary
    with pytest.raises(SenetError, match="already holds a run"):
        compare(MODELS, RECIPE, seeds=2, out=out)
    again = compare(MODELS, {**RECIPE, "resume": True}, seeds=2, out=out)
    assert [m["top1"] for m in again["models"]] == [m["top1"] for m in result["models"]]
    assert "epoch 1/2" not in capsys.readouterr().out  # nothing was retrained


def test_bad_compare_arguments(tmp_path, capsys):
    with pytest.raises(ConfigError, match="twice"):
        compare("notebook_simple,notebook_simple", RECIPE, out=tmp_path)
    with pytest.raises(ConfigError, match="unknown model"):
        compare("notebook_simple,resnet_nope", RECIPE, out=tmp_path)
    with pytest.raises(ConfigError, match="seeds"):
        compare(MODELS, RECIPE, seeds=0, out=tmp_path)
    assert main(["compare", "--data", "synthetic", "--out", str(tmp_path)]) == 2
    assert "--models" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_reads_models_and_seeds_from_the_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: [notebook_simple]\nseeds: 1\ndata: synthetic:train=32,val=16\nepochs: 1\n"
                   "batch_size: 16\nprogress: false\n")
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    assert "| notebook_simple |" in capsys.readouterr().out
    assert (tmp_path / "o" / "notebook_simple" / "seed0" / "model.safetensors").exists()


def test_demo_config_is_a_valid_compare_recipe():
    from pathlib import Path

    from senet.train.config import load_config_file

    path = Path(__file__).resolve().parents[1] / "src" / "senet" / "configs" / "demo.yaml"
    train_keys, extra = load_config_file(path, extra_keys=("models", "seeds"))
    assert extra["models"] == ["resnet20", "se_resnet20"] and extra["seeds"] >= 1
    cfg = make_config({**train_keys, "model": "resnet20"}).validate()
    assert cfg.data == "fashion-mnist" and cfg.train_subset is None  # the full dataset
