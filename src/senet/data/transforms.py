"""Image transforms.

In-memory sets (Fashion-MNIST, MNIST, CIFAR, synthetic) keep ``uint8`` tensors and augment whole batches with tensor
ops (:class:`BatchAugment`, :class:`Normalize`) - no PIL per sample. Image folders use torchvision transforms v2
with the ImageNet recipe (:func:`imagenet_train_transform`, :func:`imagenet_eval_transform`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchAugment",
    "Normalize",
    "imagenet_eval_transform",
    "imagenet_train_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BatchAugment:
    """Random crop after zero padding, an optional horizontal flip and optional random erasing, for uint8 images
    ``(N, C, H, W)``.

    Each image gets its own offset in ``[0, 2 * padding]`` on both axes (so the output keeps ``H x W``) and, when
    ``flip`` is set, a mirror with probability 1/2. Crop and flip are one gather: :meth:`prepare` pads the stored
    images once, then :meth:`gather` picks rows and (possibly reversed) columns for a whole batch at once.
    With ``erase`` = p > 0, each image then has, with probability p, one rectangle replaced by uniform random pixel
    values (random erasing, Zhong et al. 2017, its "random values" fill): area 2%-33% of the image, aspect ratio
    0.3-3.3 drawn log-uniformly, sides clipped to the image instead of redrawn. Random numbers come from
    ``generator`` (or torch's global one); with ``erase`` = 0 none are drawn for erasing, so crop and flip draw
    exactly what they drew before erasing existed.
    """

    padding: int = 0
    flip: bool = False
    erase: float = 0.0

    def prepare(self, images: Tensor) -> Tensor:
        """Zero-pad uint8 ``(N, C, H, W)`` by ``padding`` on every side: ``(N, C, H + 2p, W + 2p)``."""
        pad = self.padding
        return F.pad(images, (pad, pad, pad, pad)).contiguous() if pad else images.contiguous()

    def gather(self, prepared: Tensor, index: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augmented ``(B, C, H, W)`` images ``index`` of a :meth:`prepare`-d tensor, as one ``torch.take``."""
        batch, chans = len(index), prepared.shape[1]
        padded_h, padded_w = prepared.shape[2], prepared.shape[3]
        height, width = padded_h - 2 * self.padding, padded_w - 2 * self.padding
        dy = torch.randint(0, 2 * self.padding + 1, (batch, 1, 1, 1), generator=generator)
        dx = torch.randint(0, 2 * self.padding + 1, (batch, 1, 1, 1), generator=generator)
        cols = torch.arange(width).view(1, 1, 1, width).expand(batch, 1, 1, width)
        if self.flip:
            mirrored = torch.rand(batch, generator=generator) < 0.5
            cols = torch.where(mirrored.view(batch, 1, 1, 1), cols.flip(-1), cols)
        planes = (index.view(batch, 1, 1, 1) * chans + torch.arange(chans).view(1, chans, 1, 1)) * (padded_h * padded_w)
        rows = (dy + torch.arange(height).view(1, 1, height, 1)) * padded_w
        images = torch.take(prepared, planes + rows + (dx + cols))
        return self.erase_boxes(images, generator) if self.erase > 0 else images

    def erase_boxes(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Random erasing of a uint8 batch ``(B, C, H, W)`` with probability :attr:`erase` per image (see above)."""
        batch, _, height, width = images.shape
        chosen = torch.rand(batch, generator=generator) < self.erase
        area = torch.empty(batch).uniform_(0.02, 1 / 3, generator=generator) * (height * width)
        aspect = torch.exp(torch.empty(batch).uniform_(math.log(0.3), math.log(1 / 0.3), generator=generator))
        box_h = torch.sqrt(area * aspect).round().clamp(1, height)
        box_w = torch.sqrt(area / aspect).round().clamp(1, width)
        top = (torch.rand(batch, generator=generator) * (height - box_h + 1)).floor()
        left = (torch.rand(batch, generator=generator) * (width - box_w + 1)).floor()
        ys = torch.arange(height).view(1, height, 1)
        xs = torch.arange(width).view(1, 1, width)
        inside = ((ys >= top.view(-1, 1, 1)) & (ys < (top + box_h).view(-1, 1, 1))
                  & (xs >= left.view(-1, 1, 1)) & (xs < (left + box_w).view(-1, 1, 1)) & chosen.view(-1, 1, 1))
        noise = torch.randint(0, 256, images.shape, dtype=torch.uint8, generator=generator)
        return torch.where(inside.unsqueeze(1), noise, images)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a uint8 batch ``(B, C, H, W)`` (convenience form of :meth:`prepare` + :meth:`gather`)."""
        return self.gather(self.prepare(images), torch.arange(len(images)), generator).contiguous()

    def __bool__(self) -> bool:
        return self.padding > 0 or self.flip or self.erase > 0


class Normalize:
    """``uint8`` batch ``(B, C, H, W)`` -> float32 ``(x / 255 - mean) / std`` per channel, in one multiply-add."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, images: Tensor) -> Tensor:
        return torch.addcmul(self.shift, images.to(torch.float32), self.scale).contiguous()


def imagenet_train_transform(size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD, erase: float = 0.0):
    """Random-resized crop to ``size`` + horizontal flip, then float and normalise (the paper's ImageNet recipe);
    with ``erase`` = p > 0, then torchvision's random erasing with probability p and random values (as
    :class:`BatchAugment` does for in-memory sets)."""
    from torchvision.transforms import v2

    steps = [
        v2.ToImage(),
        v2.RandomResizedCrop(size, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ]
    if erase > 0:
        steps.append(v2.RandomErasing(p=erase, value="random"))
    return v2.Compose(steps)


def imagenet_eval_transform(size: int = 224, resize: int = 256, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Resize the short side to ``resize``, centre-crop ``size``, float, normalise."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )
