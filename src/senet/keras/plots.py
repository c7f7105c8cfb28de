"""The notebook's closing chart for Keras models: what each SE block's excitation does, by depth (section 7.2).

The excitations s (N, C) of every SE block of a Keras model (:func:`senet.keras.excitation_model`) are folded into
the same per-class statistics as the PyTorch analysis (:class:`senet.analysis.ClassStats`), so the charts are the
ones ``senet excite`` draws: by depth, the paper's Fig. 6 (class means) and Fig. 7 (spread within a class).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import torch

from senet.analysis.pipeline import ExcitationReport
from senet.analysis.selection import resolve_blocks, resolve_classes
from senet.analysis.stats import ClassStats, block_metrics
from senet.errors import ConfigError
from senet.keras.layers import excitation_model, se_block_names

__all__ = ["keras_excitation_report", "plot_keras_excitations", "se_blocks_by_depth"]


def se_blocks_by_depth(model: keras.Model) -> list[str]:
    """The model's SE block names in forward order (position of each block's excitation layer in the graph)."""
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    return sorted(se_block_names(model), key=lambda n: order.get(n, order.get(f"{n}_fc2", len(order))))


def keras_excitation_report(
    model: keras.Model,
    images: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    classes: str | Sequence[str | int] | None = None,
    blocks: str | Sequence[str] | None = None,
    batch_size: int = 256,
) -> ExcitationReport:
    """Per-class excitation statistics of every SE block of ``model`` on ``images`` (in the model's data format)
    with integer ``labels``; ``classes``/``blocks`` choose what the Fig. 6/7 charts show."""
    names = se_blocks_by_depth(model)
    if not names:
        raise ConfigError(f"Keras model {model.name!r} has no SE blocks (SqueezeExcite layers or "
                          "squeeze_excite_block outputs) to chart")
    y = torch.as_tensor(np.asarray(labels)).long().flatten()
    if len(y) != len(images):
        raise ConfigError(f"{len(y)} labels for {len(images)} images")
    if len(y) == 0 or int(y.min()) < 0:
        raise ConfigError("labels must be class indices 0, 1, ... (and at least one image is needed)")
    k = num_classes or int(y.max()) + 1
    stats = {}
    for name in names:
        s = excitation_model(model, name).predict(images, batch_size=batch_size, verbose=0)
        values = torch.as_tensor(np.asarray(s), dtype=torch.float64).flatten(1)
        stats[name] = ClassStats.from_batch(values, y, k)
    class_names = list(class_names) if class_names else [str(i) for i in range(k)]
    counts = torch.bincount(y, minlength=k).tolist()
    return ExcitationReport(
        blocks=names, chosen_blocks=resolve_blocks(blocks, names), classes=resolve_classes(classes, class_names, k),
        class_names=class_names, stats=stats, metrics={n: block_metrics(st) for n, st in stats.items()},
        images_per_class=counts, per_class_requested=max(counts), info={"model": model.name},
    )


def plot_keras_excitations(model: keras.Model, images: Any, labels: Any, out_dir: str | Path,
                           **kwargs: Any) -> dict[str, Path]:
    """Write ``depth.png`` (the notebook's excitation-by-depth chart), ``fig6_class_means.png`` and
    ``fig7_within_class.png`` for a Keras model into ``out_dir``; keyword arguments go to
    :func:`keras_excitation_report`."""
    from senet.analysis.plots import write_charts

    return write_charts(keras_excitation_report(model, images, labels, **kwargs), out_dir)
