"""Data loaders by value: the test split is never augmented, subsets have exactly the size asked for and are drawn
independently per split, and ``drop_last`` reaches the loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from senet.data import load_dataset, make_loader
from senet.data.idx import write_idx


def _fake_idx(folder: Path, n_train: int = 30, n_val: int = 6, size: int = 28) -> np.ndarray:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    val = rng.integers(0, 256, (n_val, size, size), dtype=np.uint8)
    for prefix, images in (("train", rng.integers(0, 256, (n_train, size, size), dtype=np.uint8)), ("t10k", val)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(len(images), dtype=np.uint8) % 10)
    return val


@pytest.mark.parametrize("name, mean, std", [("fashion-mnist", 0.2860, 0.3530), ("mnist", 0.1307, 0.3081)])
def test_test_split_is_normalised_and_never_augmented(tmp_path, monkeypatch, name, mean, std):
    """Train augmented, test plain: every epoch's test batch is the raw image with the published statistics
    ((x / 255 - mean) / std; Fashion-MNIST 0.2860 / 0.3530, MNIST 0.1307 / 0.3081)."""
    monkeypatch.delenv("SENET_DATA", raising=False)
    raw = _fake_idx(tmp_path / name)
    bundle = load_dataset(name, data_dir=str(tmp_path), augment=True)
    want = (torch.from_numpy(raw).float()[:, None] / 255 - mean) / std
    loader = make_loader(bundle.test, 6, shuffle=False, seed=1)
    for _ in range(3):
        images, labels = next(iter(loader))
        torch.testing.assert_close(images, want, rtol=0, atol=1e-5)
        assert labels.tolist() == [0, 1, 2, 3, 4, 5]
    held_out = make_loader(bundle.val, 12, shuffle=False, seed=1)  # a tenth of the training files, plain
    assert torch.equal(next(iter(held_out))[0], next(iter(held_out))[0])
    train = make_loader(bundle.train, 12, shuffle=False, seed=1)
    assert not torch.equal(next(iter(train))[0], next(iter(train))[0])  # the training split is augmented


def test_subsets_have_the_exact_size_and_differ_between_splits():
    bundle = load_dataset("synthetic:train=64,val=64,size=8", train_subset=20, val_subset=20, seed=3)
    assert (len(bundle.train), len(bundle.val)) == (20, 20)
    full = load_dataset("synthetic:train=64,val=64,size=8")
    rows = {split: [next(i for i in range(64) if torch.equal(getattr(full, split).images[i], img))
                    for img in getattr(bundle, split).images] for split in ("train", "val")}
    assert rows["train"] == sorted(rows["train"]) and len(set(rows["train"])) == 20  # kept in order, no repeats
    assert rows["train"] != rows["val"]  # each split draws its own subset


@pytest.mark.parametrize("drop_last, sizes", [(True, [4, 4]), (False, [4, 4, 2])])
def test_drop_last_reaches_the_loader(drop_last, sizes):
    bundle = load_dataset("synthetic:train=10,val=4,size=8")
    loader = make_loader(bundle.train, 4, shuffle=True, drop_last=drop_last)
    assert [len(y) for _, y in loader] == sizes
