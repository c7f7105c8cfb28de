""":class:`DatasetBundle` - a train/val pair of datasets with what a model and a report need to know about them."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

__all__ = ["DatasetBundle"]


@dataclass
class DatasetBundle:
    """A loaded dataset: train, validation and test splits plus their description.

    ``val`` selects and tunes (per-epoch validation, ``best/``); ``test`` is only for the final report. For sets
    published with a train/test split only (Fashion-MNIST, MNIST, CIFAR) ``val`` is a seeded part held out of the
    training files and ``test`` the published test files (see :func:`senet.data.load_dataset`). ``val`` is None
    when nothing was held out (``val_split=0``); ``test`` is None for an image folder without ``test/``.

    Items of every split are ``(image, label)``: a normalised float tensor ``(C, H, W)`` and an ``int``.
    ``train`` is augmented (unless loaded with ``augment=False``); ``val`` is only normalised. ``mean`` and ``std``
    are the per-channel statistics of the ``[0, 1]``-scaled images used for that normalisation.
    """

    name: str
    train: Dataset
    val: Dataset | None
    num_classes: int
    class_names: list[str]
    in_chans: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test: Dataset | None = None

    def split(self, name: str) -> Dataset:
        """The split called ``name`` (``train``, ``val`` or ``test``); an absent one raises ConfigError."""
        from senet.errors import ConfigError

        if name not in ("train", "val", "test"):
            raise ConfigError(f"unknown split {name!r}; choose train, val or test")
        dataset = getattr(self, name)
        if dataset is None:
            why = ("no validation part was held out (val_split=0)" if name == "val"
                   else "the image folder has no test/ folder")
            raise ConfigError(f"{self.name} has no {name} split: {why}")
        return dataset

    def describe(self) -> str:
        """One line: name, split sizes, image shape and class count."""
        h, w = self.image_size
        sizes = " / ".join(f"{len(d)} {n}" for n, d in (("train", self.train), ("val", self.val), ("test", self.test))
                           if d is not None)
        return f"{self.name}: {sizes} images, {self.in_chans}x{h}x{w}, {self.num_classes} classes"
