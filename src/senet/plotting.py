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


def save_figure(fig: Any, path: str | Path, *, rect: tuple[float, float, float, float] | None = None,
                dpi: int = 110) -> Path:
    """Lay out ``fig`` (inside ``rect``, figure fractions, when given), write it as a PNG at ``path`` (creating the
    folder) and release it."""
    fig.tight_layout(rect=rect)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
