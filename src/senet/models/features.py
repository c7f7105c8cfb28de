"""Per-stage feature maps in timm's words: :class:`FeatureInfo` and the choice of stages (``indices`` /
``out_indices``).

A *stage* is a point of a network where a feature map of a given width (``num_chs``) and total downsampling
(``reduction``) comes out of a named module (``module``); detection and segmentation heads take these maps. Each
entry also lists the SE blocks inside the stage by their paper names (``SE_<stage>_<block>``,
:mod:`senet.models.naming`), so a user can find the gates of the maps they use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from senet.errors import ConfigError

__all__ = ["FeatureInfo", "take_indices"]


class FeatureInfo(list):
    """A list of per-stage dicts (``num_chs``, ``reduction``, ``module``, ``index``, ``se_blocks``) with timm's
    accessors: ``channels()``, ``reduction()``, ``module_name()`` give one value per stage (or the one at ``idx``).
    """

    def _get(self, key: str, idx: int | None) -> Any:
        return [info[key] for info in self] if idx is None else self[idx][key]

    def channels(self, idx: int | None = None) -> list[int] | int:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | None = None) -> list[int] | int:
        return self._get("reduction", idx)

    def module_name(self, idx: int | None = None) -> list[str] | str:
        return self._get("module", idx)

    def se_blocks(self, idx: int | None = None) -> list[list[str]] | list[str]:
        return self._get("se_blocks", idx)


def take_indices(num_stages: int, indices: int | Sequence[int] | None) -> list[int]:
    """Stage indices to return, ascending: None -> all; an int n -> the last n; a sequence -> those (negative
    ones count from the end). Anything out of range raises a ConfigError naming the valid range."""
    if indices is None:
        return list(range(num_stages))
    if isinstance(indices, int) and not isinstance(indices, bool):
        if not 0 < indices <= num_stages:
            raise ConfigError(f"indices={indices}: this model has {num_stages} stages; ask for 1..{num_stages}")
        return list(range(num_stages - indices, num_stages))
    try:
        picked = [int(i) for i in indices]
    except (TypeError, ValueError):
        raise ConfigError(f"indices must be an int or a list of stage indices, got {indices!r}") from None
    bad = [i for i in picked if not -num_stages <= i < num_stages]
    if bad or not picked:
        raise ConfigError(f"stage indices {list(indices)} out of range: this model has {num_stages} stages "
                          f"(0..{num_stages - 1}, or negative from the end)")
    return sorted({i % num_stages for i in picked})
