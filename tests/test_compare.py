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


def test_report_says_what_the_seeds_can_and_cannot_conclude(summary):
    result, out = summary
    report = (out / "report.md").read_text()
    (diff,) = result["differences"]
    section = report.split("## Can these runs tell the models apart?")[1].split("\n## ")[0]
    assert f"**notebook_se_residual vs notebook_simple** (test top-1): {diff['verdict']}." in section
    half = 100 * (diff["ci95"][1] - diff["ci95"][0]) / 2  # the smallest difference two seeds resolve
    assert f"smaller than about ±{half:.2f} points" in section and "2 per-seed differences" in section
    assert "2 epochs on synthetic:train=64,val=32" in section


def test_one_seed_report_refuses_to_conclude(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"models: [{MODELS}]\nseeds: 1\ndata: synthetic:train=32,val=16\nepochs: 1\n"
                   "batch_size: 16\nprogress: false\n")
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "notebook_se_residual vs notebook_simple: one seed: no interval" in printed
    report = (tmp_path / "o" / "report.md").read_text()
    assert "One seed gives no interval, so a difference of any size could be noise" in report


def test_seeds_run_in_pairs_so_an_interrupted_comparison_can_be_compared(tmp_path, monkeypatch):
    from senet.train import api

    trained = []

    def stop_after_two(cfg):
        trained.append((cfg.model, cfg.seed))
        if len(trained) == 3:
            raise KeyboardInterrupt
        return real(cfg)

    real = api.train
    monkeypatch.setattr(api, "train", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        compare(MODELS, {**RECIPE, "epochs": 1}, seeds=3, out=tmp_path)
    assert trained == [("notebook_simple", 0), ("notebook_se_residual", 0), ("notebook_simple", 1)]


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


@pytest.mark.parametrize("name, pair", [("demo", ("resnet8", "se_resnet8")),
                                        ("se_vs_plain", ("resnet20", "se_resnet20"))])
def test_bundled_compare_recipes_pair_plain_with_se_over_enough_seeds(name, pair):
    from senet.recipes import bundled_recipes
    from senet.train.config import load_config_file

    train_keys, extra = load_config_file(bundled_recipes()[name], extra_keys=("models", "seeds"))
    assert tuple(extra["models"]) == pair and extra["seeds"] >= 5  # t(0.975, 4) = 2.78: an interval worth reading
    for model in pair:
        cfg = make_config({**train_keys, "model": model}).validate()
        assert cfg.data == "fashion-mnist" and cfg.train_subset is None  # the full dataset
        assert cfg.val_split == 0.1 and cfg.test_subset is None  # choices on validation, the whole test split once
