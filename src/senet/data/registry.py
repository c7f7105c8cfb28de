""":func:`load_dataset` - one entry point for every dataset by name, with seeded subsets."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from senet import checks
from senet.data.bundle import DatasetBundle
from senet.data.tensor_dataset import ImageTensorDataset
from senet.data.transforms import BatchAugment
from senet.errors import ConfigError

__all__ = ["DATASET_NAMES", "DEFAULT_VAL_SPLIT", "HOLDOUT_DATASETS", "dataset_base_name", "held_out_indices", "load_dataset",
           "resolve_val_count", "seeded_subset"]

#: Dataset names; ``imagefolder`` is written ``imagefolder:PATH`` and ``synthetic`` takes ``synthetic:KEY=VALUE,...``.
DATASET_NAMES = ("fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic", "imagefolder")

#: Datasets published with a train and a test split only: their validation part is held out of the train files.
HOLDOUT_DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100")
#: Fraction of the training images held out for validation when ``val_split`` is not given.
DEFAULT_VAL_SPLIT = 0.1

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "image-folder": "imagefolder",
}


def dataset_base_name(name: str) -> str:
    """The dataset a name selects, without its options (``imagefolder:photos`` -> ``imagefolder``)."""
    return _split_name(name)[0]


def _split_name(name: str) -> tuple[str, str]:
    base, _, arg = name.partition(":")
    base = base.strip().lower()
    return _ALIASES.get(base, base), arg


def _load_full(base: str, arg: str, *, data_dir, download: bool, augment: bool, strict: bool,
               image_size: int | None, random_erasing: float) -> DatasetBundle:
    if base == "synthetic":
        from senet.data.synthetic import load_synthetic

        return load_synthetic(arg, augment=augment)
    if arg and base != "imagefolder":
        raise ConfigError(f"dataset {base!r} takes no ':{arg}' part; only imagefolder:PATH and synthetic:OPTIONS do")
    if base in ("fashion-mnist", "mnist"):
        from senet.data.mnist import FASHION_MNIST, MNIST, load_idx_dataset

        spec = FASHION_MNIST if base == "fashion-mnist" else MNIST
        return load_idx_dataset(spec, data_dir=data_dir, download=download, augment=augment)
    if base in ("cifar10", "cifar100"):
        from senet.data.cifar import load_cifar

        return load_cifar(base, data_dir=data_dir, download=download, augment=augment)
    if base == "imagefolder":
        if not arg:
            raise ConfigError("imagefolder needs a path: imagefolder:PATH, with PATH/train and PATH/val class folders")
        from senet.data.imagefolder import load_imagefolder

        return load_imagefolder(arg, augment=augment, strict=strict, image_size=image_size or 224,
                                random_erasing=random_erasing)
    raise ConfigError(
        f"unknown dataset {base!r}; choose one of: fashion-mnist, mnist, cifar10, cifar100, synthetic[:OPTIONS], "
        f"imagefolder:PATH"
    )


def seeded_subset(dataset: Dataset, size: int | None, *, seed: int, split: str) -> Dataset:
    """A deterministic random subset of ``size`` items (kept in index order); ``None`` keeps everything.

    ``size`` larger than the dataset keeps everything and warns; ``size < 1`` raises ConfigError.
    """
    if size is None:
        return dataset
    if isinstance(size, bool) or not isinstance(size, int):
        raise ConfigError(f"{split} subset size must be an integer, got {size!r}")
    if size < 1:
        raise ConfigError(f"{split} subset size must be at least 1, got {size}")
    total = len(dataset)
    if size >= total:
        if size > total:
            warnings.warn(
                f"{split} subset of {size} asked for, but only {total} images exist; using all {total}", stacklevel=3
            )
        return dataset
    offset = {"train": 0, "val": 1}.get(split, 2)
    generator = torch.Generator().manual_seed(int(seed) * 3 + offset)
    indices = torch.randperm(total, generator=generator)[:size].sort().values
    if hasattr(dataset, "subset"):
        return dataset.subset(indices)
    return Subset(dataset, indices.tolist())


def resolve_val_count(val_split: float, total: int) -> int:
    """How many of ``total`` training images ``val_split`` holds out: a fraction in [0, 1) or a count >= 0."""
    bad = isinstance(val_split, bool) or not isinstance(val_split, (int, float))
    if not bad and isinstance(val_split, float) and not val_split.is_integer():
        bad = not 0 < val_split < 1
        count = round(val_split * total)
    else:
        count = 0 if bad else int(val_split)
        bad = bad or count < 0
    if bad:
        raise ConfigError(f"val_split must be a fraction in (0, 1) or a number of images >= 0, got {val_split!r}")
    if count >= total:
        raise ConfigError(f"val_split {val_split!r} would hold out {count} of the {total} training images; "
                          f"leave some to train on")
    return count


def held_out_indices(total: int, count: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """``(train indices, validation indices)``, disjoint, sorted, covering ``range(total)``.

    A function of ``(total, count, seed)`` only, so every process and every resumed run holds out the same images.
    """
    generator = torch.Generator().manual_seed(1_000_003 + int(seed))
    order = torch.randperm(total, generator=generator)
    return order[count:].sort().values, order[:count].sort().values


def _erasing_probability(random_erasing: object, augment: bool) -> float:
    """``random_erasing`` checked as :class:`senet.checks.Float` ``[0, 1]`` does for the CLI and config files."""
    try:
        probability = checks.Float(0, 1)(random_erasing)
    except ConfigError:
        raise ConfigError(f"random_erasing must be a probability in [0, 1], got {random_erasing!r}") from None
    if probability and not augment:
        raise ConfigError("random erasing is a train augmentation: it cannot be combined with augment off "
                          "(--no-augment)")
    return probability


def _with_erasing(bundle: DatasetBundle, random_erasing: float) -> DatasetBundle:
    """An in-memory training set that also erases a random box per image with probability ``random_erasing``
    (:class:`~senet.data.transforms.BatchAugment`); image folders get it in their transform instead."""
    train = bundle.train
    if random_erasing == 0 or not isinstance(train, ImageTensorDataset):
        return bundle
    augment = train.augment or BatchAugment()
    return replace(bundle, train=train.with_augment(replace(augment, erase=float(random_erasing))))


def _hold_out(bundle: DatasetBundle, val_split: float, seed: int) -> DatasetBundle:
    """The published test split becomes ``test``; ``val`` is a seeded part of the training set (never augmented)."""
    train = bundle.train
    count = resolve_val_count(val_split, len(train))
    if count == 0:
        return replace(bundle, val=None, test=bundle.val)
    train_idx, val_idx = held_out_indices(len(train), count, seed=seed)
    plain = train.with_augment(None) if hasattr(train, "with_augment") else train
    return replace(bundle, train=_subset(train, train_idx), val=_subset(plain, val_idx), test=bundle.val)


def _subset(dataset: Dataset, indices: Tensor) -> Dataset:
    return dataset.subset(indices) if hasattr(dataset, "subset") else Subset(dataset, indices.tolist())


def _resized(bundle: DatasetBundle, image_size: int | None) -> DatasetBundle:
    """In-memory sets resampled to ``image_size`` x ``image_size`` on access (image folders crop to it already)."""
    if image_size is None or tuple(bundle.image_size) == (image_size, image_size):
        return bundle
    size = (int(image_size), int(image_size))
    if not all(hasattr(d, "resized") for d in (bundle.train, bundle.val, bundle.test) if d is not None):
        raise ConfigError(f"{bundle.name} cannot be resized to {image_size}")
    parts = {k: getattr(bundle, k).resized(size) for k in ("train", "val", "test") if getattr(bundle, k) is not None}
    return replace(bundle, image_size=size, **parts)


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    train_subset: int | None = None,
    val_subset: int | None = None,
    augment: bool = True,
    seed: int = 0,
    strict: bool = False,
    val_split: float | None = None,
    test_subset: int | None = None,
    image_size: int | None = None,
    random_erasing: float = 0.0,
) -> DatasetBundle:
    """Load a dataset by name into a :class:`DatasetBundle`.

    Args:
        name: ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``imagefolder:PATH`` or
            ``synthetic[:classes=..,size=..,chans=..,train=..,val=..,noise=..,seed=..]``.
        data_dir: folder to look in before ``$SENET_DATA`` (and the download target).
        download: let torchvision fetch MNIST/Fashion-MNIST/CIFAR when no local copy is found.
        train_subset, val_subset, test_subset: keep a seeded random subset of this many images of that split.
        augment: apply the dataset's standard train augmentation (eval split is never augmented).
        seed: seeds the subsets.
        strict: image folders only - raise on the first unreadable image instead of skipping it.
        val_split: Fashion-MNIST, MNIST and CIFAR only (:data:`HOLDOUT_DATASETS`): the part of the training files
            held out as ``val`` - a fraction in (0, 1) or a number of images; 0 holds out nothing (``val`` is None).
            Default :data:`DEFAULT_VAL_SPLIT`. Their published test files become ``test``. Image folders have
            their own ``val/`` and the synthetic set its own val images, so for them it must stay None.
        image_size: the square side the model sees: image folders crop to it (default 224); in-memory sets are
            resampled to it on access (default: their stored size).
        random_erasing: probability in [0, 1] that a training image has a random box replaced by random pixel
            values (Zhong et al. 2017); needs ``augment``. Validation and test images are never erased.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"dataset name must be a non-empty string, got {name!r}")
    base, arg = _split_name(name)
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8):
        raise ConfigError(f"image_size must be an integer >= 8, got {image_size!r}")
    random_erasing = _erasing_probability(random_erasing, augment)
    if val_split is not None and base not in HOLDOUT_DATASETS:
        own = "its own val/ folder" if base == "imagefolder" else "its own val images (synthetic:val=N)"
        raise ConfigError(f"val_split applies to {', '.join(HOLDOUT_DATASETS)}; {base} validates on {own}")
    bundle = _load_full(base, arg, data_dir=data_dir, download=download, augment=augment, strict=strict,
                        image_size=image_size, random_erasing=random_erasing)
    bundle = _with_erasing(bundle, random_erasing)
    if base in HOLDOUT_DATASETS:
        bundle = _hold_out(bundle, DEFAULT_VAL_SPLIT if val_split is None else val_split, seed)
    bundle = _resized(bundle, image_size)
    return replace(
        bundle,
        train=seeded_subset(bundle.train, train_subset, seed=seed, split="train"),
        val=None if bundle.val is None else seeded_subset(bundle.val, val_subset, seed=seed, split="val"),
        test=None if bundle.test is None else seeded_subset(bundle.test, test_subset, seed=seed, split="test"),
    )
