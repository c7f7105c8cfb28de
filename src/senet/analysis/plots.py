"""The charts (matplotlib, Agg backend, PNG): the paper's Fig. 6 and Fig. 7 and a by-depth summary.

* Fig. 6 - one panel per chosen block: mean excitation per channel for a few classes plus the mean over all
  classes; more than 50 channels are sampled uniformly (every C/50-th channel), as the paper does.
* Fig. 7 - one panel per chosen block: mean and +-1 standard deviation of the excitation within one class, on a
  y axis zoomed to the band, with the standard deviation itself drawn below on its own axis (it is often ~0.01,
  thinner than the line on a 0..1 axis).
* Depth - for every block in forward order, three panels with their own scales: class specificity (0..1); the
  class-mean distance and within-class spread (gate units, often ~0.01); mean excitation and saturation (0..1).

Titles wrap to the figure's width and legends take as many columns as fit, so a one-block model (the notebook's)
and a many-block one both come out whole.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from senet.plotting import legend_columns, pyplot, save_figure, wrap_title

__all__ = ["plot_class_means", "plot_depth", "plot_within_class", "sample_channels", "write_charts"]

MAX_CHANNELS = 50


def sample_channels(channels: int, limit: int = MAX_CHANNELS) -> np.ndarray:
    """Indices of ``limit`` channels spread uniformly over ``range(channels)`` (all of them when fewer)."""
    if channels <= limit:
        return np.arange(channels)
    return np.unique(np.round(np.linspace(0, channels - 1, limit)).astype(int))


def _grid(plt, count: int, title: str, *, panel_height: float = 3.2, split: bool = False):
    """A figure with ``count`` panels, three to a row, at least 6.4 inches wide; with ``split`` each panel is a
    tall axis over a short one (returned as pairs)."""
    cols = min(3, count)
    rows = math.ceil(count / cols)
    width = max(6.4, 4.6 * cols)
    if split:
        fig = plt.figure(figsize=(width, (panel_height + 1.0) * rows + 0.9))
        outer = fig.add_gridspec(rows, cols, hspace=0.3, wspace=0.3)
        axes = []
        for i in range(count):
            inner = outer[i // cols, i % cols].subgridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
            top = fig.add_subplot(inner[0])
            axes.append((top, fig.add_subplot(inner[1], sharex=top)))
    else:
        fig, grid = plt.subplots(rows, cols, figsize=(width, panel_height * rows + 0.9), squeeze=False)
        for ax in grid.flat[count:]:
            ax.set_visible(False)
        axes = list(grid.flat[:count])
    fig.suptitle(wrap_title(title, width), fontsize=12)
    return fig, axes


def _y_limits(ax, values: np.ndarray) -> None:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    ax.set_ylim(min(0.0, lo) - 0.02, max(1.0, hi) + 0.02)


def _finish(fig, path: Path, legend_handles=None, legend_labels=None, *, tight: bool = True) -> Path:
    """Legend under the panels (as many columns as the width holds), then save; the saved area holds it all."""
    if legend_handles:
        ncol = legend_columns(legend_labels, fig.get_figwidth())
        fig.legend(legend_handles, legend_labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
                   frameon=False, fontsize=9)
    if not tight:  # a gridspec layout already spaced by hand
        fig.subplots_adjust(top=1 - 0.9 / fig.get_figheight(), bottom=0.6 / fig.get_figheight())
        return save_figure(fig, path, layout=False)
    return save_figure(fig, path, rect=(0, 0, 1, 0.96))


def plot_class_means(report, path: str | Path) -> Path:
    """Fig. 6: per chosen block, the class-mean excitation of each chosen class and the mean over all classes."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        handles = hs + [h_all]
        labels = [report.class_names[k] for k in report.classes] + ["all classes"]
    return _finish(fig, Path(path), handles, labels)


def plot_within_class(report, path: str | Path, class_index: int | None = None) -> Path:
    """Fig. 7: mean excitation with a +-1 std band over the images of one class (default: the first chosen); under
    each panel, the standard deviation per channel on its own axis."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    k = report.classes[0] if class_index is None else class_index
    blocks = [b for b in report.chosen_blocks if b in report.stats]
    fig, axes = _grid(plt, len(blocks), f"Excitation within class '{report.class_names[k]}' "
                      f"({report.images_per_class[k]} images): mean +- 1 std (band), and the std itself (below)",
                      split=True)
    handles = labels = None
    for (ax, ax_std), name in zip(axes, blocks):
        st = report.stats[name]
        ch = sample_channels(st.channels)
        mean = st.mean[k].numpy()[ch]
        std = np.nan_to_num(st.std()[k].numpy()[ch])
        band = ax.fill_between(ch, mean - std, mean + std, color="tab:blue", alpha=0.3, lw=0)
        (line,) = ax.plot(ch, mean, color="tab:blue", lw=1.2)
        lo, hi = float(np.min(mean - std)), float(np.max(mean + std))
        pad = max(0.1 * (hi - lo), 0.005)
        ax.set_ylim(max(lo - pad, -0.02 if lo >= 0 else lo - pad), hi + pad)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("activation", fontsize=8)
        ax.tick_params(labelsize=8, labelbottom=False)
        ax.grid(alpha=0.3)
        bars = ax_std.bar(ch, std, width=max(0.8, 0.8 * (ch[-1] - ch[0] + 1) / len(ch)), color="tab:orange")
        ax_std.set_ylim(0, max(float(std.max()) * 1.15, 1e-3))
        ax_std.set_ylabel("std", fontsize=8)
        ax_std.set_xlabel("channel index" + (f" ({len(ch)} of {st.channels} sampled)" if len(ch) < st.channels
                                             else ""), fontsize=8)
        ax_std.tick_params(labelsize=7)
        ax_std.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_std.grid(alpha=0.3, axis="y")
        handles, labels = [line, band, bars], ["mean", "mean +- 1 std", "std (own axis)"]
    return _finish(fig, Path(path), handles, labels, tight=False)


def plot_depth(report, path: str | Path) -> Path:
    """Every block by depth (forward order), stages separated, in three panels whose y axes fit their statistics:
    class specificity (0..1); class-mean distance and within-class std (gate units, autoscaled); mean excitation
    and saturated fractions (0..1)."""
    plt = pyplot()
    names = [b for b in report.blocks if b in report.metrics]
    x = np.arange(len(names))

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if report.metrics[n][key] is None else report.metrics[n][key] for n in names], float)

    width = max(6.5, 0.42 * len(names) + 2.5)
    fig, (spec, spread, sat) = plt.subplots(3, 1, figsize=(width, 8.2), sharex=True,
                                            gridspec_kw={"height_ratios": (1, 1, 1.1)})
    spec.plot(x, series("class_specificity"), "o-", color="tab:red", label="class specificity (between / total var.)")
    spec.set_ylim(-0.03, 1.03)
    spread.plot(x, series("class_distance"), "s--", color="tab:purple", ms=4, label="class-mean distance (RMS)")
    spread.plot(x, series("within_class_std"), "^:", color="tab:gray", ms=5, label="within-class std")
    top = np.nanmax(np.concatenate([series("class_distance"), series("within_class_std"), [0.0]]))
    spread.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    sat.plot(x, series("mean_excitation"), "o-", color="tab:blue", label="mean excitation")
    sat.plot(x, series("saturated_high"), "^-", color="tab:green", label="fraction of channels > 0.9")
    sat.plot(x, series("saturated_low"), "v-", color="tab:orange", label="fraction of channels < 0.1")
    sat.set_ylim(-0.03, 1.03)
    spec.set_title(wrap_title("What each SE block responds to, by depth", width), fontsize=12)
    for ax, ylabel in ((spec, "share of variance"), (spread, "excitation units"), (sat, "excitation / fraction")):
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
        ax.tick_params(labelsize=8)
        stages = [n.split("_")[1] if n.startswith("SE_") else None for n in names]
        for i in range(1, len(names)):
            if stages[i] != stages[i - 1]:
                ax.axvline(i - 0.5, color="black", lw=0.6, ls=":")
    if len(names) == 1:
        sat.set_xlim(-0.5, 0.5)
    sat.set_xticks(x)
    sat.set_xticklabels(names, rotation=60 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center",
                        fontsize=8)
    sat.set_xlabel("SE block (input side -> output side)", fontsize=9)
    return save_figure(fig, path)


def write_charts(report, out_dir: str | Path) -> dict[str, Path]:
    """Write ``fig6_class_means.png``, ``fig7_within_class.png`` and ``depth.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {
        "fig6": plot_class_means(report, out_dir / "fig6_class_means.png"),
        "fig7": plot_within_class(report, out_dir / "fig7_within_class.png"),
        "depth": plot_depth(report, out_dir / "depth.png"),
    }
