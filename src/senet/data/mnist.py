"""Fashion-MNIST and MNIST from their IDX files (read with numpy, held in memory as uint8 tensors).

Search order for the four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each ``.gz`` or plain): ``data_dir``, then ``$SENET_DATA`` - each first in the dataset's
subfolder (``fashion-mnist/``, torchvision's ``FashionMNIST/raw``; ``mnist/``, ``MNIST/raw``), then directly - and
for Fashion-MNIST finally ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from senet.data.bundle import DatasetBundle
from senet.data.idx import read_idx
from senet.data.locate import ENV_VAR, candidate_dirs, download_root, run_download, search_roots
from senet.data.tensor_dataset import ImageTensorDataset
from senet.data.transforms import BatchAugment
from senet.errors import SenetError

__all__ = ["FASHION_MNIST", "MNIST", "IdxDatasetSpec", "find_idx_dir", "load_idx_dataset"]

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class IdxDatasetSpec:
    """What differs between the MNIST-format datasets."""

    name: str
    subfolders: tuple[str, ...]
    system_dirs: tuple[str, ...]
    class_names: tuple[str, ...]
    mean: float
    std: float
    augment: BatchAugment
    how_to_get: str
    torchvision_class: str


FASHION_MNIST = IdxDatasetSpec(
    name="fashion-mnist",
    subfolders=("fashion-mnist", "FashionMNIST/raw"),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    mean=0.2860,
    std=0.3530,
    augment=BatchAugment(padding=2, flip=True),
    how_to_get="install it with `apt-get install dataset-fashion-mnist`, ",
    torchvision_class="FashionMNIST",
)

MNIST = IdxDatasetSpec(
    name="mnist",
    subfolders=("mnist", "MNIST/raw"),
    system_dirs=(),
    class_names=tuple(str(d) for d in range(10)),
    mean=0.1307,
    std=0.3081,
    augment=BatchAugment(padding=2, flip=False),  # a mirrored digit is a different (or no) digit
    how_to_get="",
    torchvision_class="MNIST",
)


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def find_idx_dir(spec: IdxDatasetSpec, data_dir: str | os.PathLike | None) -> tuple[Path | None, list[Path]]:
    """The first folder holding all four IDX files of ``spec`` (or ``None``) and the folders looked in."""
    looked = candidate_dirs(search_roots(data_dir), spec.subfolders, spec.system_dirs)
    for folder in looked:
        if all(_find_file(folder, stem) for stem in _FILES.values()):
            return folder, looked
    return None, looked


def _missing_error(spec: IdxDatasetSpec, looked: list[Path]) -> SenetError:
    where = ", ".join(str(p) for p in looked) or "(no folders: neither --data-dir nor SENET_DATA is set)"
    return SenetError(
        f"{spec.name} not found (looked in: {where}); {spec.how_to_get}pass --download to fetch it with "
        f"torchvision, or point --data-dir (or {ENV_VAR}) at a folder holding its four IDX files"
    )


def _download(spec: IdxDatasetSpec, data_dir) -> Path:
    import torchvision.datasets as tvd

    root = download_root(data_dir)
    dataset_class = getattr(tvd, spec.torchvision_class)
    run_download(spec.name, root, lambda: [dataset_class(str(root), train=t, download=True) for t in (True, False)])
    return root / spec.torchvision_class / "raw"


def _read_split(
    folder: Path, images_stem: str, labels_stem: str, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    images_path, labels_path = _find_file(folder, images_stem), _find_file(folder, labels_stem)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype.itemsize != 1:
        raise SenetError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise SenetError(
            f"{labels_path}: expected {len(images)} labels to match {images_path.name}, got {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise SenetError(f"{labels_path}: labels must lie in [0, {num_classes}), found {labels.min()}..{labels.max()}")
    image_tensor = torch.from_numpy(images.astype("uint8", copy=True)).unsqueeze(1)
    return image_tensor, torch.from_numpy(labels.astype("int64"))


def load_idx_dataset(
    spec: IdxDatasetSpec, *, data_dir=None, download: bool = False, augment: bool = True
) -> DatasetBundle:
    """Load ``spec`` into a :class:`DatasetBundle` (train augmented per ``spec.augment`` unless ``augment=False``)."""
    folder, looked = find_idx_dir(spec, data_dir)
    if folder is None:
        if not download:
            raise _missing_error(spec, looked)
        folder = _download(spec, data_dir)
    num_classes = len(spec.class_names)
    train_x, train_y = _read_split(folder, _FILES["train_images"], _FILES["train_labels"], num_classes)
    val_x, val_y = _read_split(folder, _FILES["val_images"], _FILES["val_labels"], num_classes)
    if train_x.shape[1:] != val_x.shape[1:]:
        raise SenetError(
            f"{folder}: train images are {tuple(train_x.shape[2:])} but test images {tuple(val_x.shape[2:])}"
        )
    mean, std = (spec.mean,), (spec.std,)
    return DatasetBundle(
        name=spec.name,
        train=ImageTensorDataset(train_x, train_y, mean, std, spec.augment if augment else None),
        val=ImageTensorDataset(val_x, val_y, mean, std, None),
        num_classes=num_classes,
        class_names=list(spec.class_names),
        in_chans=1,
        image_size=(int(train_x.shape[2]), int(train_x.shape[3])),
        mean=mean,
        std=std,
    )
