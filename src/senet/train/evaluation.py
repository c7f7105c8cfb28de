"""``senet.train.evaluate``: accuracy, loss, per-class accuracy and a confusion matrix of a saved model.

The model is rebuilt from its folder alone (:func:`senet.io.load_model`), and the data as the run saw it: the
validation part it held out (same ``val_split`` and seed, so the same images) and the input size it trained at
(:func:`saved_data_options`). The report goes to ``<run folder>/eval_<dataset>/`` (``eval_<dataset>_test/`` for the
test split): ``metrics.json`` and ``confusion.png`` (rows: true class, columns: predicted).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from senet.errors import ConfigError, SenetError

__all__ = ["SPLITS", "default_eval_dir", "evaluate", "saved_data_options"]

SPLITS = ("val", "test")


def _model_folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def torch_device(name: str | None) -> Any:
    """``name`` as a ``torch.device`` (CUDA when available if None); a bad or absent device raises one line."""
    import torch

    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SenetError(f"device {name!r} asks for CUDA but no CUDA GPU is available here; use --device cpu")
    return device


def default_eval_dir(model_path: str | Path, data: str, split: str = "val") -> Path:
    """Where :func:`evaluate` writes its files unless told otherwise: ``<folder>/eval_<dataset>`` for the
    validation split, ``<folder>/eval_<dataset>_test`` for the test split."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", data).strip("_") or "data"
    return _model_folder(Path(model_path)) / (f"eval_{slug}" if split == "val" else f"eval_{slug}_{split}")


def saved_data_options(doc: dict[str, Any], data: str | None = None) -> dict[str, Any]:
    """``val_split``, ``seed`` and ``image_size`` for :func:`senet.data.load_dataset` as the run that saved
    ``doc`` (its ``config.json``) used them, so the same images are held out and seen at the same size. For
    another dataset than the run's (``data`` given and different) only the image size carries over."""
    train_config = doc.get("train_config") or {}
    dataset = doc.get("dataset") or {}
    size = dataset.get("image_size") if isinstance(dataset, dict) else None
    size = train_config.get("image_size") or (size[0] if isinstance(size, (list, tuple)) and len(set(size)) == 1
                                              else None)
    options: dict[str, Any] = {"image_size": size}
    if data is None or data == train_config.get("data"):
        options.update(val_split=train_config.get("val_split"), seed=int(train_config.get("seed", 0) or 0))
    return options


def evaluate(
    model_path: str | Path,
    data: str | None = None,
    *,
    split: str = "val",
    image_size: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
    val_subset: int | None = None,
    batch_size: int = 256,
    workers: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
    device: str | None = None,
    compile: bool = False,
    fold_bn: bool = False,
) -> dict[str, Any]:
    """Evaluate the model saved at ``model_path`` on the ``split`` (``val`` or ``test``) of ``data``.

    The validation split is the one the run selected its model on; the test split is for a final report (the run
    already evaluated its selected model on it once, in ``test.json``). ``val_subset`` takes a seeded subset of the
    chosen split. ``image_size`` defaults to the size the run trained at. ``data`` defaults to the dataset the model was trained on (from its ``config.json``); ``device`` to CUDA when
    available. ``compile`` runs the model through ``torch.compile``; the channels-last memory format is used when
    the run that saved the model trained with it (``train_config.channels_last`` in its ``config.json``).
    ``fold_bn`` folds every BatchNorm that follows a convolution into it first (:func:`senet.fold_batchnorm`; the
    same function to float rounding, fewer passes over memory); the file on disk is not changed.

    Returns a dict with ``top1``, ``top5``, ``loss`` (mean cross-entropy), ``count``, ``per_class`` (class name ->
    accuracy, as fractions), ``confusion`` (rows: true, columns: predicted), ``device``, ``channels_last``,
    ``compiled``, ``bn_folded`` (how many BatchNorms were folded) and the paths of ``metrics.json`` and
    ``confusion.png``.
    """
    from senet.data import load_dataset, make_loader
    from senet.io import atomic_write_json, check_data_fits_model, load_model, read_config, saved_dataset_name
    from senet.train.loop import evaluate_loader
    from senet.train.plots import plot_confusion

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    model_path = Path(model_path)
    doc = read_config(model_path)
    given_data = data
    data = saved_dataset_name(doc, data, source=str(model_path))
    options = saved_data_options(doc, given_data)
    if image_size is not None:
        options["image_size"] = image_size
    import torch

    device = torch_device(device)
    model = load_model(model_path, map_location=device)
    bn_folded = 0
    if fold_bn:
        from senet.models.fold import fold_batchnorm

        model, bn_folded = fold_batchnorm(model.eval(), inplace=True)
    subset = {"val_subset" if split == "val" else "test_subset": val_subset}
    bundle = load_dataset(data, data_dir=data_dir, download=download, augment=False, **subset, **options)
    dataset = bundle.split(split)
    check_data_fits_model(doc["model"], num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                          model_source=f"the model in {model_path}", data_name=repr(data))
    channels_last = bool((doc.get("train_config") or {}).get("channels_last", False))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward_model = torch.compile(model) if compile else model
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
    meter = evaluate_loader(forward_model, loader, bundle.num_classes, device=device, progress=progress,
                            desc=f"evaluate {data} {split}", channels_last=channels_last)
    summary = meter.summary()
    names = list(bundle.class_names)
    out_dir = Path(out) if out is not None else default_eval_dir(model_path, data, split)
    result: dict[str, Any] = {
        "model": str(model_path), "data": data, "split": split, "image_size": list(bundle.image_size),
        "count": summary["count"],
        "top1": summary["top1"], "top5": summary["top5"], "loss": summary["loss"],
        "per_class": dict(zip(names, meter.per_class_accuracy())),
        "confusion": meter.confusion.tolist(),
        "device": str(device), "channels_last": channels_last, "compiled": bool(compile),
        "bn_folded": bn_folded,
        "metrics_json": str(out_dir / "metrics.json"), "confusion_png": str(out_dir / "confusion.png"),
    }
    title = f"{doc['model']['name']} on {data} ({split}): top-1 {summary['top1']:.4f}"
    plot_confusion(result["confusion"], names, out_dir / "confusion.png", title=title)
    atomic_write_json(out_dir / "metrics.json", result)
    return result
