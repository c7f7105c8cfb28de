"""``create_attn``: the single place model builders turn an ``attn_layer`` name or callable into a module."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from senet.errors import ConfigError
from senet.layers.squeeze_excite import SqueezeExcite
from senet.layers.variants import ECA, ChannelSpatialSE, EffectiveSE, GatherExcite, SpatialSE

__all__ = ["ATTN_LAYERS", "AttnFactory", "check_option_names", "create_attn", "make_attn_factory", "resolve_attn"]

#: Builds the attention module for a number of channels (None: no attention). Model builders take one of these.
AttnFactory = Callable[[int], "nn.Module | None"]

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
    check_option_names(factory, kwargs)
    return factory(channels, **kwargs)


def check_option_names(factory: Callable[..., nn.Module], options: dict[str, Any]) -> None:
    """Raise a ConfigError naming any option ``factory`` does not take (by its signature; values are not checked).

    Only classes are inspected; for them the first parameter after ``self`` is the channel count C and cannot be
    passed as an option. A class whose ``**kwargs`` go to another class names it in ``forwards_options_to``
    (ChannelSpatialSE -> SqueezeExcite) and those names are accepted too; any other callable, or a class taking
    ``**kwargs`` without saying where they go, accepts any name.
    """
    accepted = _option_names(factory)
    if accepted is None:
        return
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ConfigError(
            f"{factory.__name__} does not take option(s) {', '.join(unknown)}; it accepts {', '.join(accepted)}"
        )


def make_attn_factory(
    attn_layer: str | Callable[..., nn.Module] | None,
    *,
    reduction: float | None = None,
    squeeze: str | None = None,
    gate: str | Callable[[], nn.Module] | None = None,
    se_bias: bool | None = None,
    attn_kwargs: dict[str, Any] | None = None,
) -> AttnFactory | None:
    """A ``channels -> module`` factory for ``attn_layer``, the one every model family uses (None: no attention).

    ``reduction`` (r), ``squeeze`` (F_sq), ``gate`` (sigma) and ``se_bias`` (biases on W1, W2) are SqueezeExcite's
    options. Only the ones set (not None) are passed on, with ``attn_kwargs``, so the layer's own defaults apply
    otherwise and a layer that does not take one (ECA has no ``reduction``) raises a ConfigError naming it - checked
    here, once, against the layer's signature, before any block is built. Option *values* (such as r > C) are
    checked by the layer when each block is built with its real C. Options given while ``attn_layer`` is None
    are refused too: they would otherwise be parsed and silently ignored.
    """
    given = {"reduction": reduction, "squeeze": squeeze, "gate": gate, "bias": se_bias}
    opts = {k: v for k, v in given.items() if v is not None}
    opts.update(attn_kwargs or {})
    factory = resolve_attn(attn_layer)
    if factory is None:
        if opts:
            names = ", ".join("se_bias" if k == "bias" else k for k in opts)
            raise ConfigError(f"{names} only take(s) effect with an attention layer, but attn_layer is None; "
                              "set attn_layer='se' (or use the se_* model)")
        return None
    # Fail now on an option name the layer does not take; values are checked when a block is built with its
    # real channel count C (a stand-in C here would wrongly refuse e.g. r=128 for a network whose narrowest C is 256).
    check_option_names(factory, opts)

    def build(channels: int) -> nn.Module | None:
        return create_attn(factory, channels, **opts)

    return build


def _option_names(factory: Callable[..., nn.Module]) -> list[str] | None:
    """The keyword options a layer class takes besides C, or None when they cannot be known."""
    if not isinstance(factory, type):
        return None
    try:
        params = dict(inspect.signature(factory.__init__).parameters)
    except (TypeError, ValueError):  # no introspectable signature: leave it to the constructor
        return None
    positional = [n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                             inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    channel_param = positional[1] if len(positional) > 1 else None  # the first after self
    names = [n for n, p in params.items() if n not in ("self", channel_param)
             and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        target = getattr(factory, "forwards_options_to", None)
        extra = _option_names(target) if target is not None else None
        if extra is None:
            return None
        names += [n for n in extra if n not in names]
    return names
