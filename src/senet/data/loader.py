""":func:`make_loader` - a ``DataLoader`` whose order and augmentation are fixed by one seed."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from senet.data.tensor_dataset import collate_stacked
from senet.errors import ConfigError

__all__ = ["SeededDataLoader", "make_loader"]


def _reseedable(dataset: Dataset) -> Iterator:
    """The datasets (through ``Subset``/``ConcatDataset`` wrappers) that draw augmentation randomness themselves."""
    if hasattr(dataset, "reseed"):
        yield dataset
    inner = getattr(dataset, "dataset", None)
    if isinstance(inner, Dataset):
        yield from _reseedable(inner)
    for part in getattr(dataset, "datasets", ()) or ():
        yield from _reseedable(part)


class SeededDataLoader(DataLoader):
    """A ``DataLoader`` that also seeds main-process augmentation at every epoch from its own generator.

    With ``num_workers > 0`` the loader already seeds each worker from its generator; with ``num_workers == 0``
    each ``iter()`` draws a fresh seed from the generator and hands it to the dataset's ``reseed``. So two loaders
    made with the same seed give the same batches, epoch after epoch, whatever else uses torch's global RNG.
    """

    def __iter__(self):
        if self.num_workers == 0 and self.generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
            for dataset in _reseedable(self.dataset):
                dataset.reseed(seed)
        return super().__iter__()


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """Batches of ``(images (B, C, H, W), labels (B,))`` from ``dataset``, deterministic given ``seed``.

    ``sampler`` (e.g. a ``DistributedSampler``; call its ``set_epoch`` yourself) replaces ``shuffle``. With
    ``workers > 0`` the worker processes stay alive between epochs.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ConfigError(f"workers must be 0 or more, got {workers}")
    generator = torch.Generator().manual_seed(int(seed))
    return SeededDataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=bool(shuffle) if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        generator=generator,
        drop_last=drop_last,
        persistent_workers=workers > 0,
        collate_fn=collate_stacked,
    )
