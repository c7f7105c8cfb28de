"""``create_attn``: the single place model builders turn an ``attn_layer`` name or callable into a module."""

from __future__ import annotations

import difflib
import inspect
from typing import Callable

from torch import nn

from senet.errors import ConfigError
from senet.layers.squeeze_excite import SqueezeExcite
from senet.layers.variants import ECA, ChannelSpatialSE, EffectiveSE, GatherExcite, SpatialSE

__all__ = ["ATTN_LAYERS", "create_attn", "resolve_attn"]

#: Names accepted by :func:`create_attn`.
ATTN_LAYERS: dict[str, type[nn.Module]] = {
    "se": SqueezeExcite,
    "sse": SpatialSE,
    "scse": ChannelSpatialSE,
    "eca": ECA,
    "ese": EffectiveSE,
    "ge": GatherExcite,
}


def resolve_attn(attn: str | Callable[..., nn.Module] | None) -> Callable[..., nn.Module] | None:
    """Return the module class/factory for a name, pass a callable through, and map None/"none" to None."""
    if attn is None or attn == "none" or attn is False:
        return None
    if isinstance(attn, str):
        key = attn.lower()
        if key not in ATTN_LAYERS:
            close = difflib.get_close_matches(key, ATTN_LAYERS, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown attention layer {attn!r}{hint}; choose one of {', '.join(ATTN_LAYERS)}")
        return ATTN_LAYERS[key]
    if callable(attn):
        return attn
    raise ConfigError(f"attn_layer must be a name, a callable or None, got {type(attn).__name__}")


def create_attn(attn: str | Callable[..., nn.Module] | None, channels: int, **kwargs) -> nn.Module | None:
    """Build an attention module for ``channels`` input channels, or return None when ``attn`` is None.

    Keyword arguments go to the module's constructor. An option the chosen module does not take raises a
    :class:`~senet.errors.ConfigError` naming it, instead of being silently dropped.
    """
    factory = resolve_attn(attn)
    if factory is None:
        return None
    if isinstance(factory, type):
        params = inspect.signature(factory.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params] if not takes_any else []
        if unknown:
            accepted = [p for p in params if p not in ("self", "channels") and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
            raise ConfigError(
                f"{factory.__name__} does not take option(s) {', '.join(unknown)}; it accepts {', '.join(accepted)}"
            )
    return factory(channels, **kwargs)
