"""Shared matplotlib plumbing for every chart the project writes: the Agg backend and saving a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use, never at ``import senet``)."""
    from senet._extras import require

    matplotlib = require("matplotlib", "analysis", purpose="charts")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def wrap_title(text: str, width_inches: float, fontsize: float = 12) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``fontsize`` points (about 0.55 em per character)."""
    import textwrap

    chars = max(20, int(width_inches * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def legend_columns(labels: list[str], width_inches: float, fontsize: float = 9, most: int = 6) -> int:
    """How many legend entries fit side by side in ``width_inches`` (each: a handle and its longest label)."""
    longest = max((len(label) for label in labels), default=1)
    per_entry = (longest * 0.55 * fontsize + 40) / 72
    return max(1, min(most, len(labels), int(width_inches / per_entry)))


def save_figure(fig: Any, path: str | Path, *, rect: tuple[float, float, float, float] | None = None,
                dpi: int = 110, layout: bool = True) -> Path:
    """Lay out ``fig`` (inside ``rect``, figure fractions, when given; ``layout=False`` keeps a layout set by hand),
    write it as a PNG at ``path`` (creating the folder) and release it. The saved area grows to hold every title
    and legend, so none is ever cut off."""
    if layout:
        fig.tight_layout(rect=rect)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    pyplot().close(fig)
    return path
