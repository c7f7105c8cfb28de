"""The charts (matplotlib, Agg backend, PNG): the paper's Fig. 6 and Fig. 7 and a by-depth summary.

* Fig. 6 - one panel per chosen block: mean excitation per channel for a few classes plus the mean over all
  classes; more than 50 channels are sampled uniformly (every C/50-th channel), as the paper does.
* Fig. 7 - one panel per chosen block: mean and +-1 standard deviation of the excitation within one class.
* Depth - class specificity, within-class spread and saturation for every block, in forward order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from senet.plotting import pyplot, save_figure

__all__ = ["plot_class_means", "plot_depth", "plot_within_class", "sample_channels", "write_charts"]

MAX_CHANNELS = 50


def sample_channels(channels: int, limit: int = MAX_CHANNELS) -> np.ndarray:
    """Indices of ``limit`` channels spread uniformly over ``range(channels)`` (all of them when fewer)."""
    if channels <= limit:
        return np.arange(channels)
    return np.unique(np.round(np.linspace(0, channels - 1, limit)).astype(int))


def _grid(plt, count: int, title: str):
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows + 0.9), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12)
    return fig, list(axes.flat[:count])


def _y_limits(ax, values: np.ndarray) -> None:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    ax.set_ylim(min(0.0, lo) - 0.02, max(1.0, hi) + 0.02)


def _finish(fig, path: Path, legend_handles=None, legend_labels=None, ncol: int = 6) -> Path:
    if legend_handles:
        fig.legend(legend_handles, legend_labels, loc="lower center", ncol=min(ncol, len(legend_labels)),
                   frameon=False, fontsize=9)
    return save_figure(fig, path, rect=(0, 0.07 if legend_handles else 0, 1, 0.96))


def plot_class_means(report, path: str | Path) -> Path:
    """Fig. 6: per chosen block, the class-mean excitation of each chosen class and the mean over all classes."""
    plt = pyplot()
    blocks = [b for b in report.chosen_blocks if b in report.stats]
    counts = sorted({report.images_per_class[k] for k in report.classes})
    per = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    fig, axes = _grid(plt, len(blocks), f"Mean excitation per channel by class ({per} images per class)")
    colors = plt.get_cmap("tab10")
    handles = labels = None
    for ax, name in zip(axes, blocks):
        st = report.stats[name]
        ch = sample_channels(st.channels)
        hs = []
        for i, k in enumerate(report.classes):
            (h,) = ax.plot(ch, st.mean[k].numpy()[ch], lw=1.1, color=colors(i % 10), alpha=0.9)
            hs.append(h)
        overall = st.overall_mean().numpy()[ch]
        (h_all,) = ax.plot(ch, overall, lw=2.0, color="black", ls="--")
        _y_limits(ax, np.concatenate([st.mean[report.classes].numpy()[:, ch].ravel(), overall]))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("channel index" + (f" ({len(ch)} of {st.channels} sampled)" if len(ch) < st.channels else ""),
                      fontsize=8)
        ax.set_ylabel("activation", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        handles = hs + [h_all]
        labels = [report.class_names[k] for k in report.classes] + ["all classes"]
    return _finish(fig, Path(path), handles, labels)


def plot_within_class(report, path: str | Path, class_index: int | None = None) -> Path:
    """Fig. 7: mean excitation with a +-1 std band over the images of one class (default: the first chosen)."""
    plt = pyplot()
    k = report.classes[0] if class_index is None else class_index
    blocks = [b for b in report.chosen_blocks if b in report.stats]
    fig, axes = _grid(plt, len(blocks), f"Excitation within class '{report.class_names[k]}' "
                      f"({report.images_per_class[k]} images): mean +- std")
    handles = labels = None
    for ax, name in zip(axes, blocks):
        st = report.stats[name]
        ch = sample_channels(st.channels)
        mean = st.mean[k].numpy()[ch]
        std = np.nan_to_num(st.std()[k].numpy()[ch])
        band = ax.fill_between(ch, mean - std, mean + std, color="tab:blue", alpha=0.25, lw=0)
        (line,) = ax.plot(ch, mean, color="tab:blue", lw=1.4)
        _y_limits(ax, np.concatenate([mean - std, mean + std]))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("channel index", fontsize=8)
        ax.set_ylabel("activation", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        handles, labels = [line, band], ["mean", "mean +- 1 std"]
    return _finish(fig, Path(path), handles, labels)


def plot_depth(report, path: str | Path) -> Path:
    """Class specificity and saturation of every block by depth (forward order), stages separated."""
    plt = pyplot()
    names = [b for b in report.blocks if b in report.metrics]
    x = np.arange(len(names))

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if report.metrics[n][key] is None else report.metrics[n][key] for n in names], float)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.5, 0.42 * len(names) + 2.5), 6.4), sharex=True)
    top.plot(x, series("class_specificity"), "o-", color="tab:red", label="class specificity (between / total var.)")
    top.plot(x, series("class_distance"), "s--", color="tab:purple", ms=4, label="class-mean distance (RMS)")
    top.plot(x, series("within_class_std"), "^:", color="tab:gray", ms=4, label="within-class std")
    top.set_ylabel("value", fontsize=9)
    top.set_title("What each SE block responds to, by depth", fontsize=12)
    bottom.plot(x, series("mean_excitation"), "o-", color="tab:blue", label="mean excitation")
    bottom.plot(x, series("saturated_high"), "^-", color="tab:green", label="fraction of channels > 0.9")
    bottom.plot(x, series("saturated_low"), "v-", color="tab:orange", label="fraction of channels < 0.1")
    bottom.set_ylabel("value", fontsize=9)
    for ax in (top, bottom):
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", framealpha=0.8)
        ax.tick_params(labelsize=8)
        stages = [n.split("_")[1] if n.startswith("SE_") else None for n in names]
        for i in range(1, len(names)):
            if stages[i] != stages[i - 1]:
                ax.axvline(i - 0.5, color="black", lw=0.6, ls=":")
    bottom.set_xticks(x)
    bottom.set_xticklabels(names, rotation=60 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center",
                           fontsize=8)
    bottom.set_xlabel("SE block (input side -> output side)", fontsize=9)
    return save_figure(fig, path)


def write_charts(report, out_dir: str | Path) -> dict[str, Path]:
    """Write ``fig6_class_means.png``, ``fig7_within_class.png`` and ``depth.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {
        "fig6": plot_class_means(report, out_dir / "fig6_class_means.png"),
        "fig7": plot_within_class(report, out_dir / "fig7_within_class.png"),
        "depth": plot_depth(report, out_dir / "depth.png"),
    }
