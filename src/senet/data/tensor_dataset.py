"""An in-memory image dataset: ``uint8`` images, augmented and normalised with tensor ops, one batch at a time.

``DataLoader`` asks a dataset that defines ``__getitems__`` for a whole batch of indices at once, so augmentation
and normalisation run once per batch instead of once per image. Items are still ``(float image (C, H, W), int
label)``, so the dataset behaves like any other for ``ds[i]``, ``Subset`` and the default collate.

Random numbers: inside a ``DataLoader`` worker, torch's global generator (which the loader seeds from its own
generator); in the main process, the generator set by :meth:`ImageTensorDataset.reseed` (which
:func:`senet.data.make_loader` calls at the start of every epoch), else torch's global one.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, default_collate, get_worker_info

from senet.data.transforms import BatchAugment, Normalize

__all__ = ["ImageTensorDataset", "StackedItems", "collate_stacked"]


@contextmanager
def _one_thread():
    """Run a batch's small, memory-bound ops on one thread: splitting them across intra-op threads costs more than
    it saves, and on a busy machine a batch would wait for a second thread that is not free
    (``benchmarks/bench_data.py`` measures it)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class StackedItems(Sequence):
    """A batch already stacked: reads as a sequence of ``(image, int label)`` items, so any collate works, while
    :func:`collate_stacked` hands the stacked tensors over without splitting and restacking them."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return StackedItems(self.images[i], self.labels[i])
        return self.images[i], int(self.labels[i])


def collate_stacked(batch):
    """``default_collate``, except that a :class:`StackedItems` batch is returned as ``[images, labels]`` as is."""
    if isinstance(batch, StackedItems):
        return [batch.images, batch.labels]
    return default_collate(batch)


class ImageTensorDataset(Dataset):
    """Images ``(N, C, H, W)`` uint8 and labels ``(N,)`` int64 held in memory.

    Args:
        images: uint8 tensor ``(N, C, H, W)``.
        labels: integer tensor ``(N,)``.
        mean, std: per-channel statistics of the ``[0, 1]``-scaled images, used to normalise.
        augment: a :class:`BatchAugment` applied before normalising, or ``None`` for evaluation.
        resize: ``(H, W)`` to resample every image to (bilinear, antialiased when shrinking) after augmenting and
            before normalising, so a small image can feed a model that needs a larger input; None keeps the size.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: BatchAugment | None = None,
        resize: tuple[int, int] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels must be a tensor ({len(images)},), got {tuple(labels.shape)}")
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise ValueError(f"mean/std need {images.shape[1]} values each, got {len(mean)} and {len(std)}")
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.augment = augment if augment else None
        self._prepared = self.augment.prepare(self.images) if self.augment is not None else None
        self._normalize = Normalize(self.mean, self.std)
        self._generator: torch.Generator | None = None
        native = (int(images.shape[2]), int(images.shape[3]))
        self.resize = None if resize is None or tuple(resize) == native else (int(resize[0]), int(resize[1]))

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the items (after any resize)."""
        return self.resize or (int(self.images.shape[2]), int(self.images.shape[3]))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.get_batch([index])
        return image[0], int(label[0])

    def __getitems__(self, indices: Sequence[int]) -> StackedItems:
        return StackedItems(*self.get_batch(indices))

    def get_batch(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(float images (B, C, H, W), int64 labels (B,))`` for ``indices``, augmented if configured."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        with _one_thread():
            if self.augment is not None:
                images = self.augment.gather(self._prepared, index, self._current_generator())
            else:
                images = self.images[index]
            if self.resize is not None:
                shrink = self.resize[0] < images.shape[2] or self.resize[1] < images.shape[3]
                images = F.interpolate(images.to(torch.float32), size=self.resize, mode="bilinear",
                                       align_corners=False, antialias=shrink)
            return self._normalize(images), self.labels[index]

    def reseed(self, seed: int | None) -> None:
        """Draw main-process augmentation randomness from a generator seeded with ``seed`` (``None``: global RNG)."""
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def _current_generator(self) -> torch.Generator | None:
        if get_worker_info() is not None:
            return None  # the DataLoader seeds each worker's global generator from the loader's own
        return self._generator

    def subset(self, indices: Sequence[int] | Tensor) -> ImageTensorDataset:
        """A new dataset holding only ``indices`` (a copy of those images; same statistics and augmentation)."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ImageTensorDataset(self.images[index], self.labels[index], self.mean, self.std, self.augment,
                                  self.resize)

    def with_augment(self, augment: BatchAugment | None) -> ImageTensorDataset:
        """The same images (shared, not copied) with another augmentation."""
        return ImageTensorDataset(self.images, self.labels, self.mean, self.std, augment, self.resize)

    def resized(self, size: tuple[int, int] | None) -> ImageTensorDataset:
        """The same images (shared, not copied) resampled to ``size`` on access (None: their stored size)."""
        return ImageTensorDataset(self.images, self.labels, self.mean, self.std, self.augment, size)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        size = f", resize={self.resize}" if self.resize else ""
        return f"ImageTensorDataset(n={n}, shape=({c}, {h}, {w}), augment={self.augment}{size})"
