"""Datasets for training and analysis: local files first, nothing downloaded unless asked.

:func:`load_dataset` returns a :class:`DatasetBundle` (train/val splits, class names, channels, image size,
normalisation statistics); :func:`make_loader` batches a split deterministically. In-memory sets (Fashion-MNIST,
MNIST, CIFAR, synthetic) keep uint8 tensors and augment whole batches with tensor ops; image folders use
torchvision's reader and the ImageNet transforms.
"""

from senet.data.bundle import DatasetBundle
from senet.data.idx import read_idx, write_idx
from senet.data.loader import make_loader
from senet.data.registry import DATASET_NAMES, load_dataset, seeded_subset
from senet.data.tensor_dataset import ImageTensorDataset
from senet.data.transforms import BatchAugment, Normalize

__all__ = [
    "DATASET_NAMES",
    "BatchAugment",
    "DatasetBundle",
    "ImageTensorDataset",
    "Normalize",
    "load_dataset",
    "make_loader",
    "read_idx",
    "seeded_subset",
    "write_idx",
]
