"""The whole fine-tuning path on real images, through the CLI as a user runs it:

Fashion-MNIST PNG files in an image-folder layout -> a timm SE-ResNet-50 checkpoint (random weights: nothing is
downloaded) -> ``senet convert`` (layout read from the keys) -> ``senet train --init-from`` at 32x32 for one epoch
-> ``senet evaluate`` on val and test -> ``senet export`` to ONNX -> ONNX Runtime's predictions on the PNG files
equal PyTorch's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort  # the onnx extra: missing is an error, not a quiet skip
import pytest
import timm  # the dev extra
import torch

from senet.cli import main

FMNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = {0: "tshirt", 1: "trouser", 7: "sneaker"}
PER_SPLIT = {"train": 60, "val": 20, "test": 20}  # images per class: 300 PNG files in all
SIZE = 32


def _write_png_folders(root: Path) -> None:
    from PIL import Image

    from senet.data import read_idx

    images = read_idx(next(FMNIST.glob("train-images-idx3-ubyte*")))
    labels = read_idx(next(FMNIST.glob("train-labels-idx1-ubyte*")))
    for label, name in CLASSES.items():
        picks = np.flatnonzero(labels == label)
        start = 0
        for split, count in PER_SPLIT.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in picks[start:start + count]:
                Image.fromarray(images[i], mode="L").save(folder / f"{i}.png")
            start += count


def _senet(capsys, *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.is_dir(), reason="Fashion-MNIST IDX files not installed")
def test_timm_checkpoint_to_fine_tuned_onnx_on_png_files(tmp_path, capsys):
    images = tmp_path / "images"
    _write_png_folders(images)
    torch.manual_seed(0)
    checkpoint = tmp_path / "seresnet50.pth"
    torch.save(timm.create_model("seresnet50", pretrained=False).state_dict(), checkpoint)

    printed = _senet(capsys, "convert", str(checkpoint), "--out", str(tmp_path / "converted"))
    assert "timm layout" in printed and "se_resnet50 (inferred)" in printed

    run = tmp_path / "run"
    printed = _senet(capsys, "train", "--init-from", str(tmp_path / "converted"), "--data", f"imagefolder:{images}",
                     "--image-size", str(SIZE), "--epochs", "1", "--batch-size", "30", "--lr", "0.01",
                     "--out", str(run), "--no-progress")
    assert "re-initialised 2, skipped 2" in printed  # the 1000-class head replaced by a 3-class one
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "se_resnet50" and config["model"]["kwargs"]["stride_in_1x1"] is False
    assert config["dataset"]["image_size"] == [SIZE, SIZE] and config["class_names"] == sorted(CLASSES.values())

    for split in ("val", "test"):
        result = json.loads(_senet(capsys, "evaluate", str(run), "--split", split, "--json", "--device", "cpu"))
        assert result["split"] == split and result["count"] == 60 and result["image_size"] == [SIZE, SIZE]
    assert json.loads((run / "test.json").read_text())["count"] == 60

    onnx_file = tmp_path / "model.onnx"
    _senet(capsys, "export", str(run), "--out", str(onnx_file), "--dynamic-batch")
    from senet.data.transforms import imagenet_eval_transform
    from senet.io import load_model

    transform = imagenet_eval_transform(SIZE, resize=round(SIZE * 256 / 224))
    from PIL import Image

    files = sorted((images / "test").rglob("*.png"))
    batch = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    assert batch.shape == (60, 3, SIZE, SIZE)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    with torch.no_grad():
        torch_logits = load_model(run)(batch).numpy()
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3, rtol=0)
    assert (onnx_logits.argmax(1) == torch_logits.argmax(1)).all()
