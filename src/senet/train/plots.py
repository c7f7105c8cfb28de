"""PNG charts for runs: the confusion matrix of an evaluation and the training curves of a run or a comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from senet.plotting import pyplot, save_figure

__all__ = ["plot_confusion", "plot_curves", "plot_run_curves"]


def plot_confusion(confusion: list[list[int]], class_names: list[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts written in the cells."""
    import numpy as np

    plt = pyplot()
    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = min(max(4.0, 0.55 * n + 2), 30)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 40:
        ax.set_xticks(range(n), class_names, rotation=45, ha="right")
        ax.set_yticks(range(n), class_names)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "confusion matrix")
    return save_figure(fig, path)


def plot_curves(curves: dict[str, list[list[dict[str, Any]]]], path: str | Path, title: str = "") -> Path:
    """Val top-1 and train loss per epoch: one line per model (mean over seeds), a band for min..max."""
    import numpy as np

    plt = pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, runs in curves.items():
        epochs = min(len(h) for h in runs)
        if epochs == 0:
            continue
        x = np.arange(1, epochs + 1)
        for ax, key in ((ax_acc, "val_top1"), (ax_loss, "train_loss")):
            values = np.array([[row[key] for row in h[:epochs]] for h in runs], dtype=float)
            line, = ax.plot(x, values.mean(axis=0), marker="o", markersize=3, label=label)
            if len(runs) > 1:
                ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
    ax_acc.set(xlabel="epoch", ylabel="validation top-1", title="validation top-1")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_acc, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_run_curves(history: list[dict[str, Any]], path: str | Path, model: str, data: str) -> Path:
    """The curves of one run (``senet train``), drawn as :func:`plot_curves` draws a comparison's."""
    epochs = len(history)
    return plot_curves({model: [history]}, path, title=f"{model} on {data} ({epochs} epoch{'s' * (epochs != 1)})")
