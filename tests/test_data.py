"""senet.data: IDX files, dataset discovery, augmentation, subsets, loaders, image folders, synthetic data."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from senet.data import (
    DATASET_NAMES,
    BatchAugment,
    DatasetBundle,
    ImageTensorDataset,
    load_dataset,
    make_loader,
    read_idx,
    write_idx,
)
from senet.data import mnist as mnist_module
from senet.errors import ConfigError, SenetError

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(
    not (FMNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(autouse=True)
def _no_env_data(monkeypatch, tmp_path_factory):
    monkeypatch.delenv("SENET_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))  # no real ~/.cache/senet/data in the way


def _write_fake_idx_set(folder: Path, n_train=40, n_val=20, size=28, gz=True, seed=0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_val)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(n, dtype=np.uint8) % 10)


# ---------------------------------------------------------------- IDX files
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (
        (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
        if dtype != np.uint8
        else np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    )
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([1, 2, 3], dtype=np.int32))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 1]) and raw[4:8] == (3).to_bytes(4, "big")
    assert raw[8:12] == (1).to_bytes(4, "big")


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x01\x02\x08\x01\x00\x00\x00\x03abc", "bad magic"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 3]) + b"abc", "unknown type code"),
        (bytes([0, 0, 0x08, 2, 0, 0, 0, 3]), "truncated"),
        (bytes([0, 0, 0x08, 1, 0, 0, 0, 5]) + b"abc", "size mismatch"),
        (b"", "bad magic"),
    ],
)
def test_idx_corrupt_file_is_named(tmp_path, payload, message):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(payload)
    with pytest.raises(SenetError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_idx_broken_gzip_is_named(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 200]) + bytes(200))[:30])
    with pytest.raises(SenetError, match="damaged") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- real Fashion-MNIST
@needs_fmnist
def test_real_fashion_mnist_loads():
    bundle = load_dataset("fashion-mnist")
    assert isinstance(bundle, DatasetBundle)
    # 10% of the 60000 training images held out for validation; the 10000 t10k images are the test split
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (54000, 6000, 10000)
    assert bundle.num_classes == 10 and len(bundle.class_names) == 10
    assert bundle.class_names[0] == "T-shirt/top" and bundle.class_names[9] == "Ankle boot"
    assert (bundle.in_chans, bundle.image_size) == (1, (28, 28))
    image, label = bundle.test[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and isinstance(label, int)
    images, labels = bundle.test.get_batch(torch.arange(len(bundle.test)))
    assert abs(images.mean().item()) < 0.05 and abs(images.std().item() - 1) < 0.05
    assert torch.bincount(labels).tolist() == [1000] * 10


def test_data_dir_wins_over_system_folder(tmp_path):
    _write_fake_idx_set(tmp_path / "fashion-mnist", n_train=30, n_val=12)
    bundle = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert (len(bundle.train) + len(bundle.val), len(bundle.test)) == (30, 12)


def test_env_var_and_torchvision_layout(tmp_path, monkeypatch):
    _write_fake_idx_set(tmp_path / "MNIST" / "raw", n_train=16, n_val=8, gz=False)
    monkeypatch.setenv("SENET_DATA", str(tmp_path))
    bundle = load_dataset("mnist")
    assert (len(bundle.train) + len(bundle.val), len(bundle.test), bundle.class_names[3]) == (16, 8, "3")


def test_download_cache_is_searched_last(tmp_path, monkeypatch):
    """What --download wrote to ~/.cache/senet/data (torchvision layout) is found later without any flag."""
    from senet.data.locate import DEFAULT_DOWNLOAD_DIR, download_root, search_roots

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = DEFAULT_DOWNLOAD_DIR.expanduser()
    assert cache == tmp_path / "home" / ".cache" / "senet" / "data" and download_root(None) == cache
    _write_fake_idx_set(cache / "MNIST" / "raw", n_train=14, n_val=6, gz=False)
    bundle = load_dataset("mnist")
    assert (len(bundle.train) + len(bundle.val), len(bundle.test)) == (14, 6)
    monkeypatch.setenv("SENET_DATA", str(tmp_path / "env"))
    assert search_roots(tmp_path / "cli") == [tmp_path / "cli", tmp_path / "env", cache]


def test_labels_out_of_range_are_reported(tmp_path):
    _write_fake_idx_set(tmp_path, n_train=10, n_val=10)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(10, 12, dtype=np.uint8))
    with pytest.raises(SenetError, match=r"labels must lie in \[0, 10\)"):
        load_dataset("mnist", data_dir=tmp_path)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    spec = mnist_module.FASHION_MNIST
    monkeypatch.setattr(mnist_module, "FASHION_MNIST", type(spec)(**{**spec.__dict__, "system_dirs": ()}))
    with pytest.raises(SenetError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path / "empty")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--data-dir" in message
    assert "SENET_DATA" in message and str(tmp_path / "empty") in message


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_missing_torchvision_set_mentions_download(tmp_path, name):
    with pytest.raises(SenetError, match="--download") as info:
        load_dataset(name, data_dir=tmp_path)
    assert "--data-dir" in str(info.value)


@pytest.mark.parametrize("name, cls", [("mnist", "MNIST"), ("cifar10", "CIFAR10"), ("fashion-mnist", "FashionMNIST")])
def test_download_offline_fails_clearly(tmp_path, monkeypatch, name, cls):
    import torchvision.datasets as tvd

    def offline(self):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(getattr(tvd, cls), "download", offline)
    monkeypatch.setattr(
        mnist_module,
        "FASHION_MNIST",
        type(mnist_module.FASHION_MNIST)(**{**mnist_module.FASHION_MNIST.__dict__, "system_dirs": ()}),
    )
    with pytest.raises(SenetError, match=f"could not download {name}") as info:
        load_dataset(name, data_dir=tmp_path, download=True)
    assert "offline" in str(info.value) and "URLError" in str(info.value)


# ---------------------------------------------------------------- augmentation and loaders
def test_batch_augment_matches_pad_crop_flip_reference():
    images = torch.randint(0, 256, (9, 3, 5, 7), dtype=torch.uint8)
    augment = BatchAugment(padding=2, flip=True)
    out = augment(images, torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(4)
    dy = torch.randint(0, 5, (9,), generator=gen)
    dx = torch.randint(0, 5, (9,), generator=gen)
    mirrored = torch.rand(9, generator=gen) < 0.5
    padded = F.pad(images, (2, 2, 2, 2))
    for i in range(9):
        crop = padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 7]
        assert torch.equal(out[i], crop.flip(-1) if mirrored[i] else crop)
    assert 0 < mirrored.sum() < 9


def test_augmentation_keeps_shape_and_is_seeded():
    bundle = load_dataset("synthetic:classes=3,size=12,chans=3,train=64,val=16")
    first = [x for x, _ in make_loader(bundle.train, 16, shuffle=True, seed=5)]
    torch.manual_seed(123)  # the global RNG must not matter
    again = [x for x, _ in make_loader(bundle.train, 16, shuffle=True, seed=5)]
    other = [x for x, _ in make_loader(bundle.train, 16, shuffle=True, seed=6)]
    assert all(x.shape == (16, 3, 12, 12) for x in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_epochs_differ_and_augment_false_is_plain():
    plain = load_dataset("synthetic:train=32,val=8", augment=False)
    augmented = load_dataset("synthetic:train=32,val=8")
    loader = make_loader(augmented.train, 32, shuffle=False, seed=0)
    epoch1, epoch2 = next(iter(loader))[0], next(iter(loader))[0]
    reference = plain.train.get_batch(torch.arange(32))[0]
    assert not torch.equal(epoch1, epoch2)
    assert not torch.equal(epoch1, reference)
    assert torch.equal(next(iter(make_loader(plain.train, 32, shuffle=False)))[0], reference)
    assert torch.equal(augmented.val.get_batch(torch.arange(8))[0], plain.val.get_batch(torch.arange(8))[0])


def test_mnist_is_not_flipped_but_fashion_mnist_is(tmp_path):
    assert mnist_module.MNIST.augment.flip is False and mnist_module.FASHION_MNIST.augment.flip is True
    _write_fake_idx_set(tmp_path / "mnist", n_train=8, n_val=4)
    bundle = load_dataset("mnist", data_dir=tmp_path)
    assert bundle.train.augment == BatchAugment(padding=2, flip=False)


def test_loader_with_worker_matches_shapes_and_is_seeded():
    bundle = load_dataset("synthetic:train=40,val=8,size=8")
    runs = [[(x, y) for x, y in make_loader(bundle.train, 16, shuffle=True, workers=1, seed=2)] for _ in range(2)]
    assert [len(y) for _, y in runs[0]] == [16, 16, 8]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(*runs))


def test_loader_accepts_sampler_and_plain_datasets():
    bundle = load_dataset("synthetic:train=20,val=8,size=8")
    sampler = torch.utils.data.SequentialSampler(range(20))
    labels = torch.cat([y for _, y in make_loader(bundle.train, 8, shuffle=True, sampler=sampler)])
    assert torch.equal(labels, bundle.train.labels)
    subset = torch.utils.data.Subset(bundle.train, [3, 1])
    x, y = next(iter(make_loader(subset, 2, shuffle=False, drop_last=True)))
    assert x.shape == (2, 1, 8, 8) and y.tolist() == bundle.train.labels[[3, 1]].tolist()
    with pytest.raises(ConfigError, match="batch size"):
        make_loader(bundle.train, 0, shuffle=False)


# ---------------------------------------------------------------- subsets and names
def test_subsets_are_seeded_and_checked():
    a = load_dataset("synthetic", train_subset=100, val_subset=10, seed=1)
    b = load_dataset("synthetic", train_subset=100, val_subset=10, seed=1)
    c = load_dataset("synthetic", train_subset=100, seed=2)
    assert (len(a.train), len(a.val), len(c.val)) == (100, 10, 256)
    assert torch.equal(a.train.images, b.train.images) and not torch.equal(a.train.images, c.train.images)
    with pytest.warns(UserWarning, match="only 512 images exist"):
        assert len(load_dataset("synthetic", train_subset=10_000).train) == 512
    with pytest.raises(ConfigError, match="at least 1"):
        load_dataset("synthetic", val_subset=0)


@pytest.mark.parametrize("name", ["nope", "mnist:extra", "imagefolder", "synthetic:colour=3", "synthetic:size=x"])
def test_bad_dataset_names(name):
    with pytest.raises(ConfigError):
        load_dataset(name)


def test_dataset_names_listed():
    assert set(DATASET_NAMES) >= {"fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder", "synthetic"}


# ---------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_and_learnable():
    first, second = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.val.labels, second.val.labels)
    assert (first.num_classes, first.in_chans, first.image_size, len(first.train), len(first.val)) == (
        10,
        1,
        (28, 28),
        512,
        256,
    )
    train_x, train_y = first.train.with_augment(None).get_batch(torch.arange(512))
    val_x, val_y = first.val.get_batch(torch.arange(256))
    means = torch.stack([train_x[train_y == k].mean(0) for k in range(10)]).flatten(1)
    assert torch.cdist(means, means).add(torch.eye(10) * 1e9).min() > 1.0  # class means differ
    predicted = torch.cdist(val_x.flatten(1), means).argmin(1)  # nearest class mean on held-out data
    assert (predicted == val_y).float().mean() > 0.9


def test_synthetic_options():
    bundle = load_dataset("synthetic:classes=4,size=16,chans=3,train=256,val=128")
    assert (bundle.num_classes, bundle.in_chans, bundle.image_size) == (4, 3, (16, 16))
    assert (len(bundle.train), len(bundle.val)) == (256, 128) and len(bundle.mean) == 3
    assert torch.bincount(bundle.train.labels).tolist() == [64] * 4
    assert bundle.train[0][0].shape == (3, 16, 16)
    other = load_dataset("synthetic:classes=4,size=16,chans=3,train=256,val=128,seed=1")
    assert not torch.equal(bundle.train.images, other.train.images)


# ---------------------------------------------------------------- image folders
def _write_image_folder(root: Path, classes=("cat", "dog"), per_class=3) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_imagefolder_loads_and_skips_corrupt_images(tmp_path):
    _write_image_folder(tmp_path)
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"this is not a png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = load_dataset(f"imagefolder:{tmp_path}")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "broken.png" in messages[0] and "skipped 1 unreadable" in messages[0]
    assert bundle.class_names == ["cat", "dog"] and (bundle.num_classes, bundle.in_chans) == (2, 3)
    assert (len(bundle.train), len(bundle.val)) == (6, 6) and len(bundle.train.skipped) == 1
    image, label = bundle.train[4]
    assert image.shape == (3, 224, 224) and label == 1
    val_image, _ = bundle.val[0]
    assert val_image.shape == (3, 224, 224) and abs(val_image.mean().item()) < 3
    with pytest.raises(SenetError, match="broken.png"):
        load_dataset(f"imagefolder:{tmp_path}", strict=True)


def test_imagefolder_image_that_fails_to_decode_is_replaced(tmp_path):
    from PIL import Image

    _write_image_folder(tmp_path, per_class=2)
    bad = tmp_path / "train" / "cat" / "0.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:1500])  # header intact, pixels cut off: only decoding finds out
    bundle = load_dataset(f"imagefolder:{tmp_path}")
    index = [p for p, _ in bundle.train.samples].index(str(bad))
    with pytest.warns(UserWarning, match="0.jpg"):
        image, _ = bundle.train[index]
    assert image.shape == (3, 224, 224) and bundle.train.skipped_at_load == [str(bad)]


def test_imagefolder_val_classes_must_match(tmp_path):
    _write_image_folder(tmp_path, per_class=1)
    (tmp_path / "val" / "dog").rename(tmp_path / "val" / "wolf")
    with pytest.raises(SenetError, match=r"same class folders.*missing \['dog'\].*extra \['wolf'\]"):
        load_dataset(f"imagefolder:{tmp_path}")
    with pytest.raises(SenetError, match="PATH/train and PATH/val"):
        load_dataset(f"imagefolder:{tmp_path / 'val'}")


def test_image_tensor_dataset_validates_input():
    with pytest.raises(ValueError, match="uint8"):
        ImageTensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2), (0.5,), (0.5,))


# ---------------------------------------------------------------------------------------------- evaluation protocol
def _image_bytes(dataset):
    """Every image of an in-memory split as raw bytes (to compare splits image by image)."""
    return {bytes(img.numpy().tobytes()) for img in dataset.images}


def test_validation_is_held_out_of_the_training_files_and_test_is_t10k(tmp_path):
    _write_fake_idx_set(tmp_path / "fashion-mnist", n_train=200, n_val=40)
    bundle = load_dataset("fashion-mnist", data_dir=tmp_path, val_split=0.25, seed=3)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (150, 50, 40)
    full = load_dataset("fashion-mnist", data_dir=tmp_path, val_split=0)
    assert full.val is None and len(full.train) == 200
    train, val, test = (_image_bytes(d) for d in (bundle.train, bundle.val, bundle.test))
    assert not train & val and train | val == _image_bytes(full.train)  # disjoint, together the training files
    assert test == _image_bytes(full.test)  # the published test files, untouched
    assert bundle.val.augment is None and bundle.train.augment is not None  # validation is never augmented
    again = load_dataset("fashion-mnist", data_dir=tmp_path, val_split=50, seed=3)  # a count, same seed
    assert torch.equal(again.val.images, bundle.val.images)
    other = load_dataset("fashion-mnist", data_dir=tmp_path, val_split=50, seed=4)
    assert not torch.equal(other.val.images, bundle.val.images)


def test_held_out_indices_are_fixed_by_the_seed_alone():
    from senet.data.registry import held_out_indices

    train, val = held_out_indices(1000, 100, seed=7)
    assert len(set(train.tolist()) | set(val.tolist())) == 1000 and not set(train.tolist()) & set(val.tolist())
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(held_out_indices(1000, 100, seed=7)[1], val)


def test_val_split_is_refused_where_the_data_has_its_own(tmp_path):
    with pytest.raises(ConfigError, match="validates on its own val"):
        load_dataset("synthetic", val_split=0.1)
    _write_fake_idx_set(tmp_path / "fashion-mnist", n_train=20, n_val=4)
    with pytest.raises(ConfigError, match="leave some to train on"):
        load_dataset("fashion-mnist", data_dir=tmp_path, val_split=20)
    with pytest.raises(ConfigError, match="val_split must be"):
        load_dataset("fashion-mnist", data_dir=tmp_path, val_split=1.5)


def test_small_images_are_resampled_to_the_image_size(tmp_path):
    _write_fake_idx_set(tmp_path / "fashion-mnist", n_train=20, n_val=4)
    bundle = load_dataset("fashion-mnist", data_dir=tmp_path, image_size=56, val_split=0)
    assert bundle.image_size == (56, 56)
    image, _ = bundle.test[0]
    assert image.shape == (1, 56, 56)
    small = load_dataset("fashion-mnist", data_dir=tmp_path, val_split=0).test[0][0]
    # bilinear x2 upsampling keeps the mean of the image (reference: torch's own interpolate of the float image)
    expected = torch.nn.functional.interpolate(small[None], size=(56, 56), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_image_folder_reads_test_and_crops_to_the_image_size(tmp_path):
    from PIL import Image

    for split in ("train", "val", "test"):
        for cls in ("a", "b"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (40, 30), (i * 90, 20, 200)).save(folder / f"{i}.png")
    bundle = load_dataset(f"imagefolder:{tmp_path}", image_size=32)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (4, 4, 4)
    assert bundle.val[0][0].shape == bundle.test[0][0].shape == bundle.train[0][0].shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="own val/ folder"):
        load_dataset(f"imagefolder:{tmp_path}", val_split=0.1)
