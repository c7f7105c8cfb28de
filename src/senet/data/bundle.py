""":class:`DatasetBundle` - a train/val pair of datasets with what a model and a report need to know about them."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

__all__ = ["DatasetBundle"]


@dataclass
class DatasetBundle:
    """A loaded dataset: train and validation splits plus their description.

    Items of ``train`` and ``val`` are ``(image, label)``: a normalised float tensor ``(C, H, W)`` and an ``int``.
    ``train`` is augmented (unless loaded with ``augment=False``); ``val`` is only normalised. ``mean`` and ``std``
    are the per-channel statistics of the ``[0, 1]``-scaled images used for that normalisation.
    """

    name: str
    train: Dataset
    val: Dataset
    num_classes: int
    class_names: list[str]
    in_chans: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def describe(self) -> str:
        """One line: name, split sizes, image shape and class count."""
        h, w = self.image_size
        return (
            f"{self.name}: {len(self.train)} train / {len(self.val)} val images, "
            f"{self.in_chans}x{h}x{w}, {self.num_classes} classes"
        )
