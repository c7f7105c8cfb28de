"""The evaluation protocol: validation held out of the training files, the test split evaluated once at the end,
and the input size a run trained at carried to evaluate / export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from senet.cli import main
from senet.data import write_idx
from senet.errors import ConfigError
from senet.train import evaluate, train


def _fake_fashion_mnist(root: Path, n_train: int = 120, n_test: int = 40) -> Path:
    """IDX files in the Fashion-MNIST layout with learnable labels (a bright square whose place is the class)."""
    rng = np.random.default_rng(0)
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label:2 * label + 6, 4:10] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return root


RECIPE = {"model": "resnet8", "data": "fashion-mnist", "epochs": 2, "batch_size": 20, "lr": 0.05,
          "progress": False, "val_split": 30}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return _fake_fashion_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    return train({**RECIPE, "data_dir": str(data_dir), "out": str(out)}), out


def test_validation_comes_from_training_files_and_test_is_run_once(run, data_dir):
    result, out = run
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 2 and all(row["val_top1"] for row in rows)
    record = json.loads((out / "test.json").read_text())
    assert record["weights"] == "best" and record["epoch"] == result.best_epoch and record["count"] == 40
    assert result.test == record
    # `senet evaluate` rebuilds the same held-out images from the run's seed and val_split: same numbers
    best_row = rows[result.best_epoch - 1]
    val = evaluate(out / "best", split="val", data_dir=str(data_dir))
    assert val["count"] == 30 and val["top1"] == pytest.approx(float(best_row["val_top1"]))
    test = evaluate(out / "best", split="test", data_dir=str(data_dir))
    assert test["count"] == 40 and test["top1"] == pytest.approx(record["top1"])
    assert Path(test["metrics_json"]).parent.name == "eval_fashion-mnist_test"


def test_resuming_a_finished_run_does_not_test_again(run, data_dir, capsys):
    result, out = run
    stamp = (out / "test.json").stat().st_mtime_ns
    again = train({"out": str(out), "resume": True, "data_dir": str(data_dir)})
    assert again.test == result.test and (out / "test.json").stat().st_mtime_ns == stamp
    assert "test (" not in capsys.readouterr().out


def test_no_validation_split_disables_best_and_tests_the_final_model(data_dir, tmp_path, capsys):
    out = tmp_path / "noval"
    result = train({**RECIPE, "val_split": 0, "data_dir": str(data_dir), "out": str(out)})
    assert "no validation split" in capsys.readouterr().out
    assert not (out / "best").exists() and result.best_epoch == 0
    assert result.test["weights"] == "final" and result.test["epoch"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert [row["val_top1"] for row in rows] == ["", ""]
    with pytest.raises(ConfigError, match="no val split"):
        evaluate(out, split="val", data_dir=str(data_dir))


@pytest.mark.slow
def test_image_size_is_saved_and_used_by_evaluate_and_export(data_dir, tmp_path):
    """Trained on 28x28 images upscaled to 40: evaluate sees 40x40, export's example input is 1x40x40 and ONNX
    Runtime runs 40x40 images; without --image-size a 28x28 run exports at 28x28 (not the model's default)."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "big"
    train({**RECIPE, "epochs": 1, "image_size": 40, "data_dir": str(data_dir), "out": str(out)})
    assert json.loads((out / "config.json").read_text())["dataset"]["image_size"] == [40, 40]
    assert evaluate(out, data_dir=str(data_dir))["image_size"] == [40, 40]
    onnx_path = tmp_path / "big.onnx"
    assert main(["export", str(out), "--out", str(onnx_path)]) == 0
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [1, 40, 40]
    small = tmp_path / "small"
    train({**RECIPE, "epochs": 1, "data_dir": str(data_dir), "out": str(small)})
    assert main(["export", str(small), "--out", str(tmp_path / "small.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "small.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [1, 28, 28]
    logits = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 1, 28, 28), np.float32)})[0]
    assert logits.shape == (1, 10) and np.isfinite(logits).all()
