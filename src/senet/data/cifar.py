"""CIFAR-10 and CIFAR-100 through torchvision's readers, held in memory as uint8 tensors.

torchvision expects a root folder holding ``cifar-10-batches-py/`` (or ``cifar-100-python/``). Roots tried:
``data_dir`` then ``$SENET_DATA``, each as ``ROOT/cifar10`` (``ROOT/cifar100``), ``ROOT/cifar-10`` (``ROOT/cifar-100``)
and ``ROOT``. ``download=True`` fetches the archive with torchvision into ``data_dir`` (or ``$SENET_DATA``, or
``~/.cache/senet/data``) only when no local copy is found.
"""

from __future__ import annotations

from pathlib import Path

import torch

from senet.data.bundle import DatasetBundle
from senet.data.locate import ENV_VAR, candidate_dirs, download_root, run_download, search_roots
from senet.data.tensor_dataset import ImageTensorDataset
from senet.data.transforms import BatchAugment
from senet.errors import SenetError

__all__ = ["CIFAR_STATS", "find_cifar_root", "load_cifar"]

#: Per-channel mean and std of the ``[0, 1]``-scaled training images.
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_SUBFOLDERS = {"cifar10": ("cifar10", "cifar-10"), "cifar100": ("cifar100", "cifar-100")}
#: The standard CIFAR augmentation: 4-pixel zero padding, a random 32x32 crop, a random horizontal flip.
CIFAR_AUGMENT = BatchAugment(padding=4, flip=True)


def find_cifar_root(name: str, data_dir) -> tuple[Path | None, list[Path]]:
    """The first root whose ``cifar-10-batches-py`` / ``cifar-100-python`` folder exists, and the roots tried."""
    looked = candidate_dirs(search_roots(data_dir), _SUBFOLDERS[name])
    for root in looked:
        if (root / _FOLDERS[name]).is_dir():
            return root, looked
    return None, looked


def _torchvision_class(name: str):
    import torchvision.datasets as tvd

    return tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100


def _read(name: str, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    try:
        dataset = _torchvision_class(name)(str(root), train=train, download=False)
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise SenetError(
            f"{root / _FOLDERS[name]}: cannot read {name} ({exc}); the files are incomplete or damaged - "
            f"replace them, or delete the folder and pass --download"
        ) from exc
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    return images, torch.as_tensor(dataset.targets, dtype=torch.int64), list(dataset.classes)


def load_cifar(name: str, *, data_dir=None, download: bool = False, augment: bool = True) -> DatasetBundle:
    """CIFAR-10 (``name="cifar10"``) or CIFAR-100 as a :class:`DatasetBundle`."""
    root, looked = find_cifar_root(name, data_dir)
    if root is None:
        if not download:
            where = ", ".join(str(p) for p in looked) or "(no folders: neither --data-dir nor SENET_DATA is set)"
            raise SenetError(
                f"{name} not found (looked for {_FOLDERS[name]}/ in: {where}); pass --download to fetch it with "
                f"torchvision, or point --data-dir (or {ENV_VAR}) at the folder that holds {_FOLDERS[name]}/"
            )
        root = download_root(data_dir)
        dataset_class = _torchvision_class(name)
        run_download(name, root, lambda: [dataset_class(str(root), train=t, download=True) for t in (True, False)])
    train_x, train_y, classes = _read(name, root, train=True)
    val_x, val_y, _ = _read(name, root, train=False)
    mean, std = CIFAR_STATS[name]
    return DatasetBundle(
        name=name,
        train=ImageTensorDataset(train_x, train_y, mean, std, CIFAR_AUGMENT if augment else None),
        val=ImageTensorDataset(val_x, val_y, mean, std, None),
        num_classes=len(classes),
        class_names=classes,
        in_chans=3,
        image_size=(32, 32),
        mean=mean,
        std=std,
    )
