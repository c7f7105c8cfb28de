"""A small, deterministic, learnable image set for tests and smoke runs: no files, no network.

Each class has a fixed smooth pattern (random 4x4 values upsampled to the image size); an image is its class
pattern times a random contrast plus pixel noise, stored as uint8. A small convolutional net separates the classes
in a few epochs. Options go in the name: ``synthetic:classes=4,size=16,chans=3,train=256,val=128,noise=0.5,seed=1``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from senet.data.bundle import DatasetBundle
from senet.data.tensor_dataset import ImageTensorDataset
from senet.data.transforms import BatchAugment
from senet.errors import ConfigError

__all__ = ["SyntheticOptions", "load_synthetic", "make_synthetic_images", "parse_synthetic_options"]


@dataclass(frozen=True)
class SyntheticOptions:
    """The shape of the synthetic set; every field can be set from the dataset name."""

    classes: int = 10
    size: int = 28
    chans: int = 1
    train: int = 512
    val: int = 256
    test: int = 128
    noise: float = 0.5
    seed: int = 0


_LIMITS = {"classes": (2, 1000), "size": (4, 512), "chans": (1, 16), "train": (1, 1_000_000), "val": (1, 1_000_000),
           "test": (1, 1_000_000)}


def parse_synthetic_options(text: str) -> SyntheticOptions:
    """Parse ``"classes=4,size=16"`` (the part after ``synthetic:``); unknown keys or bad values raise ConfigError."""
    known = {f.name: f.type for f in fields(SyntheticOptions)}
    values: dict[str, int | float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ConfigError(
                f"synthetic option {item!r} is not KEY=VALUE with KEY one of {', '.join(known)} "
                f"(e.g. synthetic:classes=4,size=16,chans=3,train=256,val=128)"
            )
        try:
            value: int | float = float(raw) if key == "noise" else int(raw)
        except ValueError:
            kind = "a number" if key == "noise" else "an integer"
            raise ConfigError(f"synthetic option {key}={raw!r} must be {kind}") from None
        low, high = _LIMITS.get(key, (0, float("inf")) if key == "noise" else (-(2**63), 2**63 - 1))
        if not low <= value <= high:
            raise ConfigError(f"synthetic option {key}={raw} is out of range [{low}, {high}]")
        values[key] = value
    return SyntheticOptions(**values)


def make_synthetic_images(opts: SyntheticOptions) -> tuple[torch.Tensor, ...]:
    """``(train_images, train_labels, val_images, val_labels, test_images, test_labels)``; uint8 images
    ``(N, chans, size, size)``. The test images are drawn last, so they leave the train and val images unchanged."""
    gen = torch.Generator().manual_seed(opts.seed)
    coarse = torch.randn(opts.classes, opts.chans, 4, 4, generator=gen)
    patterns = F.interpolate(coarse, size=(opts.size, opts.size), mode="bilinear", align_corners=False)
    patterns = (patterns - patterns.mean(dim=(1, 2, 3), keepdim=True)) / patterns.std(dim=(1, 2, 3), keepdim=True)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % opts.classes
        labels = labels[torch.randperm(n, generator=gen)]
        contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=gen)
        noise = torch.randn(n, opts.chans, opts.size, opts.size, generator=gen)
        pixels = 128.0 + 45.0 * (contrast * patterns[labels] + opts.noise * noise)
        return pixels.round().clamp(0, 255).to(torch.uint8), labels

    train_x, train_y = draw(opts.train)
    val_x, val_y = draw(opts.val)
    test_x, test_y = draw(opts.test)
    return train_x, train_y, val_x, val_y, test_x, test_y


def load_synthetic(options: str = "", *, augment: bool = True) -> DatasetBundle:
    """The synthetic set as a :class:`DatasetBundle`; ``options`` is the text after ``synthetic:``."""
    opts = parse_synthetic_options(options)
    train_x, train_y, val_x, val_y, test_x, test_y = make_synthetic_images(opts)
    scaled = train_x.to(torch.float32) / 255.0
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(max(s, 1e-3) for s in scaled.std(dim=(0, 2, 3)).tolist())
    train_augment = BatchAugment(padding=max(1, opts.size // 14), flip=False) if augment else None
    return DatasetBundle(
        name=f"synthetic:{options.strip()}" if options.strip() else "synthetic",
        train=ImageTensorDataset(train_x, train_y, mean, std, train_augment),
        val=ImageTensorDataset(val_x, val_y, mean, std, None),
        test=ImageTensorDataset(test_x, test_y, mean, std, None),
        num_classes=opts.classes,
        class_names=[f"class_{i}" for i in range(opts.classes)],
        in_chans=opts.chans,
        image_size=(opts.size, opts.size),
        mean=mean,
        std=std,
    )
