""":func:`load_dataset` - one entry point for every dataset by name, with seeded subsets."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

import torch
from torch.utils.data import Dataset, Subset

from senet.data.bundle import DatasetBundle
from senet.errors import ConfigError

__all__ = ["DATASET_NAMES", "load_dataset", "seeded_subset"]

#: Dataset names; ``imagefolder`` is written ``imagefolder:PATH`` and ``synthetic`` takes ``synthetic:KEY=VALUE,...``.
DATASET_NAMES = ("fashion-mnist", "mnist", "cifar10", "cifar100", "synthetic", "imagefolder")

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "image-folder": "imagefolder",
}


def _split_name(name: str) -> tuple[str, str]:
    base, _, arg = name.partition(":")
    base = base.strip().lower()
    return _ALIASES.get(base, base), arg


def _load_full(base: str, arg: str, *, data_dir, download: bool, augment: bool, strict: bool) -> DatasetBundle:
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

        return load_imagefolder(arg, augment=augment, strict=strict)
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
) -> DatasetBundle:
    """Load a dataset by name into a :class:`DatasetBundle`.

    Args:
        name: ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``imagefolder:PATH`` or
            ``synthetic[:classes=..,size=..,chans=..,train=..,val=..,noise=..,seed=..]``.
        data_dir: folder to look in before ``$SENET_DATA`` (and the download target).
        download: let torchvision fetch MNIST/Fashion-MNIST/CIFAR when no local copy is found.
        train_subset, val_subset: keep a seeded random subset of this many images.
        augment: apply the dataset's standard train augmentation (eval split is never augmented).
        seed: seeds the subsets.
        strict: image folders only - raise on the first unreadable image instead of skipping it.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"dataset name must be a non-empty string, got {name!r}")
    base, arg = _split_name(name)
    bundle = _load_full(base, arg, data_dir=data_dir, download=download, augment=augment, strict=strict)
    return replace(
        bundle,
        train=seeded_subset(bundle.train, train_subset, seed=seed, split="train"),
        val=seeded_subset(bundle.val, val_subset, seed=seed, split="val"),
    )
