"""Real training on real data (Fashion-MNIST from the Debian package): slow, but CI runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import senet
from senet.cli import main
from senet.train import train

FASHION = Path("/usr/share/datasets/fashion-mnist")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (FASHION / "train-images-idx3-ubyte.gz").exists(),
        reason="Fashion-MNIST not installed: `apt-get install dataset-fashion-mnist` (python3 tasks.py test does it)",
    ),
]


def test_se_resnet20_learns_fashion_mnist_and_the_run_evaluates_and_excites(tmp_path, capsys):
    out = tmp_path / "se20"
    result = train({
        "model": "se_resnet20", "data": "fashion-mnist", "train_subset": 3000, "val_subset": 1000, "epochs": 2,
        "batch_size": 64, "lr": 0.1, "schedule": "onecycle", "channels_last": True, "progress": False,
        "out": str(out),
    })
    # 10 classes (chance 10%); a linear classifier on raw pixels reaches ~80% on the full set.
    assert result.final["val_top1"] > 0.65
    capsys.readouterr()  # drop the per-epoch lines training printed

    assert main(["evaluate", str(out), "--data", "fashion-mnist", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert 0.65 < evaluated["top1"] <= evaluated["top5"] <= 1.0
    assert set(evaluated["per_class"]) == {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                           "Sneaker", "Bag", "Ankle boot"} or len(evaluated["per_class"]) == 10

    excite = tmp_path / "excite"
    assert main(["excite", str(out), "--out", str(excite), "--per-class", "20", "--json", "--no-progress"]) == 0
    blocks = json.loads(capsys.readouterr().out)
    assert (excite / "fig6_class_means.png").stat().st_size > 10_000
    text = json.dumps(blocks)
    assert "SE_2_1" in text and "SE_4_3" in text
    model = senet.load_model(out)
    assert next(iter(senet.named_se_blocks(model))) == "SE_2_1"
