"""Your own images: ``PATH/train/<class>/*.jpg``, ``PATH/val/<class>/*.jpg`` and optionally ``PATH/test/<class>/``
(torchvision ImageFolder layout). ``val/`` is for per-epoch validation and model selection, ``test/`` for the final
report only.

Class names are the folder names of ``PATH/train`` in sorted order; ``PATH/val`` (and ``PATH/test``) must have the
same folders. Images are decoded with PIL, converted to RGB and transformed with the ImageNet recipe (train:
random-resized crop S + flip; eval: resize round(S * 256 / 224) + centre crop S; ImageNet mean/std), with S = 224
unless ``image_size`` says otherwise.

Unreadable images. Loading scans every file's header (threads, so it is IO-bound, not CPU-bound) and leaves out
files PIL cannot identify; one warning names the first such file and the count. A file whose header reads but
whose pixels do not decode (a truncated JPEG) is found only when it is loaded: it is replaced by the next readable
image, counted in ``dataset.skipped_at_load`` and warned about once per process. ``strict=True`` raises a
:class:`~senet.errors.SenetError` naming the file instead, in both cases.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from senet.data.bundle import DatasetBundle
from senet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, imagenet_eval_transform, imagenet_train_transform
from senet.errors import SenetError

__all__ = ["ImageFolderDataset", "load_imagefolder", "scan_images"]

_DECODE_ERRORS = (OSError, ValueError, SyntaxError)  # PIL's UnidentifiedImageError is an OSError


def _open_rgb(path: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def _header_error(path: str) -> str | None:
    """``None`` if PIL can identify ``path`` and verify its structure, else the reason it cannot."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except _DECODE_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def scan_images(samples: list[tuple[str, int]], *, strict: bool, threads: int = 8) -> tuple[list, list]:
    """Split ``samples`` into readable ones and ``(path, reason)`` pairs for the unreadable (raise if ``strict``)."""
    from senet._extras import require

    tqdm = require("tqdm", "train", purpose="scanning an image folder").tqdm
    with ThreadPoolExecutor(max_workers=threads) as pool:
        reasons = list(
            tqdm(
                pool.map(_header_error, [p for p, _ in samples]),
                total=len(samples),
                desc="checking images",
                unit="img",
                disable=len(samples) < 5000,
                leave=False,
            )
        )
    good, bad = [], []
    for sample, reason in zip(samples, reasons):
        if reason is None:
            good.append(sample)
        elif strict:
            raise SenetError(f"{sample[0]}: unreadable image ({reason}); remove it, or load without strict")
        else:
            bad.append((sample[0], reason))
    return good, bad


class ImageFolderDataset(Dataset):
    """``(path, class index)`` samples decoded on access; items are ``(transform(image), label)``.

    ``skipped`` lists the ``(path, reason)`` pairs the header scan left out; ``skipped_at_load`` the paths that
    failed to decode later (in this process).
    """

    def __init__(
        self,
        samples: list[tuple[str, int]],
        transform: Callable,
        *,
        strict: bool = False,
        skipped: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.samples = list(samples)
        self.skipped = list(skipped)  # (path, reason) of files left out when the folder was scanned
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.strict = strict
        self.skipped_at_load: list[str] = []

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        for attempt in range(len(self.samples)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                image = _open_rgb(path)
            except _DECODE_ERRORS as exc:
                self._record_failure(path, exc)
                continue
            return self.transform(image), label
        raise SenetError(f"no image in this dataset could be decoded (first: {self.samples[index][0]})")

    def _record_failure(self, path: str, exc: Exception) -> None:
        if self.strict:
            raise SenetError(f"{path}: unreadable image ({type(exc).__name__}: {exc}); remove it") from exc
        if path not in self.skipped_at_load:
            self.skipped_at_load.append(path)
            if len(self.skipped_at_load) == 1:
                warnings.warn(
                    f"{path}: image does not decode ({exc}); using the next image instead "
                    f"(later failures are counted in skipped_at_load, not warned)",
                    stacklevel=3,
                )

    def subset(self, indices: Sequence[int]) -> ImageFolderDataset:
        """A dataset of only the samples at ``indices``."""
        return ImageFolderDataset([self.samples[int(i)] for i in indices], self.transform, strict=self.strict,
                                  skipped=self.skipped)

    def __repr__(self) -> str:
        return f"ImageFolderDataset(n={len(self)}, transform={self.transform})"


def _list_split(split_dir: Path, class_to_idx: dict[str, int] | None) -> tuple[list[str], list[tuple[str, int]]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not split_dir.is_dir():
        raise SenetError(
            f"{split_dir} is not a folder; imagefolder:PATH needs PATH/train and PATH/val, "
            f"each with one subfolder of images per class"
        )
    try:
        classes, found = find_classes(str(split_dir))
    except FileNotFoundError as exc:
        raise SenetError(f"{split_dir} has no class subfolders ({exc})") from exc
    if class_to_idx is not None and classes != list(class_to_idx):
        missing, extra = sorted(set(class_to_idx) - set(classes)), sorted(set(classes) - set(class_to_idx))
        raise SenetError(f"{split_dir} must have the same class folders as train: missing {missing}, extra {extra}")
    samples = make_dataset(str(split_dir), class_to_idx or found, extensions=IMG_EXTENSIONS, allow_empty=True)
    if not samples:
        raise SenetError(f"{split_dir} holds no images with extensions {', '.join(IMG_EXTENSIONS)}")
    counts = Counter(label for _, label in samples)
    empty = [name for name in classes if counts[(class_to_idx or found)[name]] == 0]
    if empty:  # a class without images would be learned as one that never occurs
        raise SenetError(f"class folder {split_dir / empty[0]} holds no images with extensions "
                         f"{', '.join(IMG_EXTENSIONS)}" + (f" (nor do {', '.join(empty[1:])})" if empty[1:] else "")
                         + "; add images or remove the folder")
    return classes, samples


def load_imagefolder(path: str, *, augment: bool = True, strict: bool = False, image_size: int = 224,
                     random_erasing: float = 0.0) -> DatasetBundle:
    """Load ``path/train``, ``path/val`` and, when present, ``path/test`` as a :class:`DatasetBundle`.

    ``image_size`` is the side of the square the model sees: training takes random-resized crops of that size;
    evaluation resizes the short side to ``image_size * 256 / 224`` and centre-crops ``image_size`` (the ratio of
    the standard 256 -> 224 ImageNet evaluation).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SenetError(f"imagefolder path {root} is not a folder (expected {root}/train and {root}/val)")
    classes, train_samples = _list_split(root / "train", None)
    class_to_idx = {name: i for i, name in enumerate(classes)}
    splits = {"train": train_samples, "val": _list_split(root / "val", class_to_idx)[1]}
    if (root / "test").is_dir():
        splits["test"] = _list_split(root / "test", class_to_idx)[1]
    scanned = {name: scan_images(samples, strict=strict) for name, samples in splits.items()}
    bad = [item for _, skipped in scanned.values() for item in skipped]
    if bad:
        counts = ", ".join(f"{name} {len(skipped)}" for name, (_, skipped) in scanned.items())
        warnings.warn(f"imagefolder {root}: skipped {len(bad)} unreadable image(s) ({counts}), first: {bad[0][0]} "
                      f"({bad[0][1]})", stacklevel=4)
    for name, (good, _) in scanned.items():
        if not good:
            raise SenetError(f"imagefolder {root}: no readable images left in {name}")
    eval_tf = imagenet_eval_transform(image_size, resize=round(image_size * 256 / 224))
    train_tf = imagenet_train_transform(image_size, erase=random_erasing) if augment else eval_tf

    def dataset(name: str, transform) -> ImageFolderDataset | None:
        if name not in scanned:
            return None
        good, skipped = scanned[name]
        return ImageFolderDataset(good, transform, strict=strict, skipped=skipped)

    return DatasetBundle(
        name=f"imagefolder:{root}",
        train=dataset("train", train_tf),
        val=dataset("val", eval_tf),
        test=dataset("test", eval_tf),
        num_classes=len(classes),
        class_names=classes,
        in_chans=3,
        image_size=(image_size, image_size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
