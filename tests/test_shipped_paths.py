"""What ships, run as it ships: the shipped configs' precision and memory format, a real ``torch.compile`` in
evaluation, the CIFAR loader on files in the official format, and ``remove_se`` against a hand-made model."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import senet
from senet.models import create_model
from senet.train import evaluate, train
from senet.train.config import make_config


def _shipped_settings() -> tuple[str, bool]:
    from senet.recipes import bundled_recipes

    docs = [yaml.safe_load(path.read_text()) for path in bundled_recipes().values()]  # train and compare recipes
    assert len(docs) >= 5
    settings = {(str(d["precision"]), bool(d["channels_last"])) for d in docs}
    assert len(settings) == 1, settings
    return settings.pop()


@pytest.mark.slow
def test_shipped_precision_and_layout_train_a_few_steps(tmp_path, monkeypatch):
    """An SE-ResNet in the shipped configs' precision and memory format: the convolutions really see bf16 and
    channels-last input, the loss falls and every weight stays finite."""
    precision, channels_last = _shipped_settings()
    assert (precision, channels_last) == ("bf16-mixed", True)
    seen: list[tuple[torch.dtype, bool]] = []
    real_create = senet.models.create_model

    def create_and_watch(name, **kwargs):
        model = real_create(name, **kwargs)
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 3)
        conv.register_forward_hook(lambda m, args, out: seen.append(
            (out.dtype, args[0].is_contiguous(memory_format=torch.channels_last))))
        return model

    monkeypatch.setattr(senet.models, "create_model", create_and_watch)
    config = make_config({"model": "se_resnet8", "data": "synthetic:classes=4,size=12,chans=3,train=48,val=16",
                          "epochs": 3, "batch_size": 16, "lr": 0.1, "schedule": "cosine", "precision": precision,
                          "channels_last": channels_last, "progress": False, "out": str(tmp_path / "bf16")})
    result = train(config)
    losses = [row["train_loss"] for row in result.history]
    assert all(np.isfinite(losses)) and losses[0] > losses[1] > losses[2] and losses[2] < 0.9 * losses[0], losses
    assert seen and all(dtype == torch.bfloat16 and cl for dtype, cl in seen[:16]), seen[:4]
    state = senet.load_model(result.out).state_dict()
    assert all(torch.isfinite(v.float()).all() for v in state.values())
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())  # autocast, not a bf16 model


def _metrics_by_hand(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        logits = model.eval()(images)
    top5 = logits.argsort(dim=1, descending=True)[:, :5]
    return {"top1": float((logits.argmax(1) == labels).float().mean()),
            "top5": float((top5 == labels[:, None]).any(1).float().mean()),
            "loss": float(F.cross_entropy(logits, labels))}


@pytest.mark.slow
def test_evaluate_with_a_real_torch_compile(tmp_path):
    """``compile=True`` runs the model through dynamo (frames counted) and gives the eager metrics."""
    import torch._dynamo

    data = "synthetic:classes=6,size=8,val=40"
    model = create_model("notebook_simple", num_classes=6, image_size=8)
    senet.save_model(model, tmp_path / "m")
    from senet.data import load_dataset

    val = load_dataset(data, augment=False).val
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([val[i][1] for i in range(len(val))])
    want = _metrics_by_hand(model, images, labels)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result = evaluate(tmp_path / "m", data, batch_size=16, compile=True, device="cpu", out=tmp_path / "e")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo traced the model
    assert result["compiled"] is True and result["count"] == 40
    assert result["top1"] == pytest.approx(want["top1"]) and result["top5"] == pytest.approx(want["top5"])
    assert result["loss"] == pytest.approx(want["loss"], rel=1e-4)
    torch._dynamo.reset()


# ------------------------------------------------------------------------------------------------ CIFAR-10 files
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_image(index: int) -> np.ndarray:
    """A (3, 32, 32) uint8 image whose every pixel encodes (index, channel, row, col) - so a wrong axis shows."""
    c, h, w = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return ((index * 7 + c * 80 + h * 3 + w) % 256).astype(np.uint8)


def _write_fake_cifar10(root, per_batch: int = 4) -> tuple[list[int], list[int]]:
    """The official python layout: five training batches, a test batch and batches.meta, each a pickled dict;
    ``data`` is (N, 3072) uint8, a row is the red, green then blue 32x32 plane in row-major order."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_labels, test_labels = [], []
    for b, name in enumerate(["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                              "test_batch"]):
        idx = [b * per_batch + i for i in range(per_batch)]
        labels = [(3 * i + 1) % 10 for i in idx]
        rows = np.stack([_cifar_image(i).reshape(3072) for i in idx])
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": rows, "filenames": [f"{i}.png" for i in idx]},
                        f, protocol=2)
        (test_labels if name == "test_batch" else train_labels).extend(labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR10_NAMES, "num_cases_per_batch": per_batch, "num_vis": 3072}, f, protocol=2)
    return train_labels, test_labels


def test_cifar10_loader_reads_the_official_layout(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    # torchvision checks the files' MD5 against the real release; these files are ours, so skip that check only
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    train_labels, test_labels = _write_fake_cifar10(tmp_path / "cifar10")
    from senet.data import load_dataset

    bundle = load_dataset("cifar10", data_dir=str(tmp_path), augment=False, val_split=0)
    assert (bundle.num_classes, bundle.in_chans, tuple(bundle.image_size)) == (10, 3, (32, 32))
    assert list(bundle.class_names) == CIFAR10_NAMES
    assert (len(bundle.train), bundle.val, len(bundle.test)) == (20, None, 4)
    # the published CIFAR-10 training-set statistics (per channel, [0, 1] scale)
    mean = torch.tensor([0.4914, 0.4822, 0.4465])[:, None, None]
    std = torch.tensor([0.2470, 0.2435, 0.2616])[:, None, None]

    def expected(index: int) -> torch.Tensor:
        return (torch.from_numpy(_cifar_image(index)).float() / 255 - mean) / std

    for split, labels, offset in ((bundle.train, train_labels, 0), (bundle.test, test_labels, 20)):
        for i in range(len(split)):
            image, label = split[i]
            assert label == labels[i]
            torch.testing.assert_close(image, expected(offset + i), rtol=0, atol=1e-5)
    # by default a seeded tenth of the training files is held out for validation, plain (never augmented)
    held = load_dataset("cifar10", data_dir=str(tmp_path), augment=True)
    assert (len(held.train), len(held.val), len(held.test)) == (18, 2, 4)
    for i in range(len(held.val)):
        image, label = held.val[i]
        source = next(j for j in range(20) if torch.allclose(image, expected(j), rtol=0, atol=1e-5))
        assert label == train_labels[source]


# ------------------------------------------------------------------------------------------------ remove_se
@torch.no_grad()
def test_remove_se_equals_the_model_with_those_blocks_replaced_by_identity():
    """CIFAR se_resnet20: paper stage 3 is ``layer2``; dropping its SE blocks by hand is the reference."""
    model = create_model("se_resnet20", num_classes=4).eval()
    for m in model.modules():  # non-trivial gates, so removing a block changes the output
        if hasattr(m, "fc2"):
            nn.init.normal_(m.fc2.weight, std=2.0)
    by_hand = copy.deepcopy(model)
    for unit in by_hand.layer2:
        unit.se = nn.Identity()
    pruned = senet.remove_se(model, stages=[3])
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(pruned(x), by_hand(x), rtol=0, atol=0)
    assert (pruned(x) - model(x)).abs().max() > 1e-3  # the original keeps its blocks (a copy was pruned)
    assert sum(isinstance(m, nn.Identity) for m in pruned.modules()) >= 3
    assert [n for n in senet.named_se_blocks(pruned)] == [f"SE_{s}_{b}" for s in (2, 4) for b in (1, 2, 3)]
