"""``senet excite``: end to end on a saved model and the synthetic dataset, and its one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

import senet
from senet.cli import main

DATA = "synthetic:classes=4,size=28,chans=1,train=8,val=64"


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("excite")
    torch.manual_seed(0)
    se = senet.create_model("se_resnet20", num_classes=4, in_chans=1)
    senet.save_model(se, root / "se", extra={"dataset": {"name": DATA}})
    plain = senet.create_model("resnet20", num_classes=4, in_chans=1)
    senet.save_model(plain, root / "plain")
    return root


def test_excite_writes_report_and_charts_and_prints_json(saved, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["excite", str(saved / "se"), "--out", str(out), "--json", "--per-class", "50", "--classes",
               "class_3,1", "--blocks", "SE_2_3,SE_4_3", "--drop-se-stage", "4", "--eval-images", "32",
               "--batch-size", "16", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    assert [b["block"] for b in doc["blocks"]] == list(senet.named_se_blocks(senet.load_model(saved / "se")))
    assert doc["drop_se"]["images"] == 32 and doc["drop_se"]["removed_blocks"] == ["SE_4_1", "SE_4_2", "SE_4_3"]
    assert "used all of them" in captured.err  # 64 val images cannot give 50 per class
    report = json.loads((out / "excitation.json").read_text())
    assert report["chart_blocks"] == ["SE_2_3", "SE_4_3"] and report["chart_classes"] == ["class_3", "class_1"]
    assert report["images"] == 64 and report["dataset"] == DATA
    for name in ("excitation.csv", "fig6_class_means.png", "fig7_within_class.png", "depth.png"):
        assert (out / name).stat().st_size > 0
        assert str(out / name) in captured.err


def test_excite_prints_table_and_paths(saved, tmp_path, capsys):
    rc = main(["excite", str(saved / "se"), "--data", DATA, "--out", str(tmp_path), "--per-class", "4"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "16 images" in out and "SE_3_2" in out and f"wrote depth: {tmp_path / 'depth.png'}" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--classes", "cat"], "unknown class(es) cat; valid: 0=class_0, 1=class_1"),
        (["--blocks", "SE_5_1"], "unknown SE block(s) SE_5_1; valid: SE_2_1, SE_2_2"),
        (["--per-class", "0"], "--per-class: expected an integer from 1"),
    ],
)
def test_excite_bad_names_exit_2_with_one_line(saved, tmp_path, capsys, extra, message):
    rc = main(["excite", str(saved / "se"), "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_excite_model_without_se_blocks(saved, tmp_path, capsys):
    rc = main(["excite", str(saved / "plain"), "--data", DATA, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no SE blocks" in err and len(err.strip().splitlines()) == 1


def test_excite_needs_a_dataset_name(saved, tmp_path, capsys):
    (saved / "nodata").mkdir(exist_ok=True)
    senet.save_model(senet.load_model(saved / "se"), saved / "nodata")
    rc = main(["excite", str(saved / "nodata"), "--out", str(tmp_path)])
    assert rc == 2 and "pass --data NAME" in capsys.readouterr().err


@pytest.mark.parametrize("model_entry", [{}, {"name": "se_resnet20", "kwargs": [1]}, "se_resnet20"])
def test_excite_on_a_foreign_config_exits_2_with_one_line(saved, tmp_path, capsys, model_entry):
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((saved / "se" / "model.safetensors").read_bytes())
    (folder / "config.json").write_text(json.dumps({"format": "senet", "model": model_entry}))
    rc = main(["excite", str(folder), "--data", DATA, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a senet config" in err and str(folder / "config.json") in err
    assert len(err.strip().splitlines()) == 1


def test_excite_eval_images_needs_drop_se_stage(saved, tmp_path, capsys):
    rc = main(["excite", str(saved / "se"), "--out", str(tmp_path), "--eval-images", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "--eval-images needs --drop-se-stage" in err and not any(tmp_path.iterdir())


@pytest.mark.parametrize(("data", "message"), [
    ("synthetic:classes=20,size=28,chans=1,train=8,val=40", "built for num_classes=4 but 'synthetic:classes=20"),
    ("synthetic:classes=4,size=28,chans=3,train=8,val=16", "built for in_chans=1 but"),
])
def test_excite_on_data_the_model_was_not_built_for(saved, tmp_path, capsys, data, message):
    rc = main(["excite", str(saved / "se"), "--data", data, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
