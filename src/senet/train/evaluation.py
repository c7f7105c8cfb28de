"""``senet.train.evaluate``: accuracy, loss, per-class accuracy and a confusion matrix of a saved model.

The model is rebuilt from its folder alone (:func:`senet.io.load_model`). The report goes to
``<run folder>/eval_<dataset>/``: ``metrics.json`` and ``confusion.png`` (rows: true class, columns: predicted).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from senet.errors import ConfigError, SenetError

__all__ = ["default_eval_dir", "evaluate"]


def _model_folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def _torch_device(name: str | None) -> Any:
    """``name`` as a ``torch.device`` (CUDA when available if None); a bad or absent device raises one line."""
    import torch

    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SenetError(f"device {name!r} asks for CUDA but no CUDA GPU is available here; use --device cpu")
    return device


def default_eval_dir(model_path: str | Path, data: str) -> Path:
    """Where :func:`evaluate` writes its files unless told otherwise: ``<folder>/eval_<dataset>``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", data).strip("_") or "data"
    return _model_folder(Path(model_path)) / f"eval_{slug}"


def evaluate(
    model_path: str | Path,
    data: str | None = None,
    *,
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
    """Evaluate the model saved at ``model_path`` on the validation (test) split of ``data``.

    ``data`` defaults to the dataset the model was trained on (from its ``config.json``); ``device`` to CUDA when
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

    model_path = Path(model_path)
    doc = read_config(model_path)
    data = saved_dataset_name(doc, data, source=str(model_path))
    import torch

    device = _torch_device(device)
    model = load_model(model_path, map_location=device)
    bn_folded = 0
    if fold_bn:
        from senet.models.fold import fold_batchnorm

        model, bn_folded = fold_batchnorm(model.eval(), inplace=True)
    bundle = load_dataset(data, data_dir=data_dir, download=download, val_subset=val_subset, augment=False)
    check_data_fits_model(doc["model"], num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                          model_source=f"the model in {model_path}", data_name=repr(data))
    channels_last = bool((doc.get("train_config") or {}).get("channels_last", False))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward_model = torch.compile(model) if compile else model
    loader = make_loader(bundle.val, batch_size, shuffle=False, workers=workers)
    meter = evaluate_loader(forward_model, loader, bundle.num_classes, device=device, progress=progress,
                            desc=f"evaluate {data}", channels_last=channels_last)
    summary = meter.summary()
    names = list(bundle.class_names)
    out_dir = Path(out) if out is not None else default_eval_dir(model_path, data)
    result: dict[str, Any] = {
        "model": str(model_path), "data": data, "count": summary["count"],
        "top1": summary["top1"], "top5": summary["top5"], "loss": summary["loss"],
        "per_class": dict(zip(names, meter.per_class_accuracy())),
        "confusion": meter.confusion.tolist(),
        "device": str(device), "channels_last": channels_last, "compiled": bool(compile),
        "bn_folded": bn_folded,
        "metrics_json": str(out_dir / "metrics.json"), "confusion_png": str(out_dir / "confusion.png"),
    }
    title = f"{doc['model']['name']} on {data}: top-1 {summary['top1']:.4f}"
    plot_confusion(result["confusion"], names, out_dir / "confusion.png", title=title)
    atomic_write_json(out_dir / "metrics.json", result)
    return result
