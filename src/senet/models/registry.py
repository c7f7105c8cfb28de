"""A strict model registry: names map to builder functions; every built model remembers how it was built.

``create_model`` stores ``{"name": ..., "kwargs": ...}`` on the model as ``model.senet_config`` so checkpoints and
exports can rebuild it from the file alone.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

from senet.errors import ConfigError

__all__ = ["create_model", "default_input_size", "get_model_builder", "list_models", "model_config", "register_model"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its ``__name__``. Registering a name twice raises ``ValueError``."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].__module__})")
    _REGISTRY[name] = fn
    return fn


def _ensure_loaded() -> None:
    # Model modules register themselves on import; importing the package imports them all.
    import senet.models  # noqa: F401


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style ``pattern`` such as ``"se_*"``."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name``; an unknown name raises ``ValueError`` listing close matches."""
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `senet models` lists them"
        raise ConfigError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def create_model(name: str, *, features_only: bool = False, out_indices: Any = None, **kwargs: Any) -> nn.Module:
    """Build a registered model. Unknown keyword arguments raise ``ValueError`` naming the accepted ones.

    ``features_only=True`` returns the backbone: its ``forward`` gives the list of stage maps chosen by
    ``out_indices`` (default all; see ``feature_info``), as timm's ``features_only`` models do.

    Every model also takes ``se_removed=[block names]`` (``SE_4_1``, or a module path; see
    :func:`senet.models.named_se_blocks`): those SE blocks are replaced by ``nn.Identity``, as
    :func:`senet.remove_se` leaves them, so a pruned model's saved config rebuilds it.
    """
    if out_indices is not None and not features_only:
        raise ConfigError("out_indices only applies with features_only=True")
    se_removed = kwargs.pop("se_removed", None)
    builder = get_model_builder(name)
    sig = inspect.signature(builder)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = [k for k in kwargs if k not in sig.parameters]
        if unknown:
            raise ConfigError(
                f"model {name!r} does not take argument(s) {', '.join(unknown)}; "
                f"it accepts {', '.join(sig.parameters) or 'none'}"
            )
    try:
        with warnings.catch_warnings():  # a zero width is refused below, with its name, instead
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            model = builder(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError, IndexError, ZeroDivisionError, RuntimeError) as exc:
        # Arguments outside what the architecture can take (an unexpected keyword forwarded to a block, a width of
        # 0, ...) fail deep inside construction; name the model and the arguments instead.
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "its defaults"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot build model {name!r} with {given}: {reason}") from exc
    empty = next((n for n, p in model.named_parameters() if p.numel() == 0), None)
    if empty is not None:  # a width or channel count of 0 builds, then fails in the first forward pass
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "its defaults"
        raise ConfigError(f"cannot build model {name!r} with {given}: layer {empty} would have no weights "
                          f"(a width or channel count of 0)")
    if se_removed:
        _drop_se_blocks(model, list(se_removed), name)
        kwargs["se_removed"] = list(se_removed)
    model.senet_config = {"name": name, "kwargs": dict(kwargs)}
    if features_only:
        if not hasattr(model, "to_features_only"):
            raise ConfigError(f"model {name!r} has no stage list, so features_only is not available")
        model.to_features_only(out_indices)
        # Saved with the file: loading rebuilds the backbone (JSON has lists, not tuples).
        model.senet_config["kwargs"].update(features_only=True, out_indices=list(model.out_indices))
    return model


def _drop_se_blocks(model: nn.Module, removed: list[str], name: str) -> None:
    from senet.models.naming import named_se_blocks

    blocks = named_se_blocks(model)
    unknown = [b for b in removed if b not in blocks]
    if unknown:
        raise ConfigError(f"model {name!r} has no SE block(s) {', '.join(map(str, unknown))} to remove; "
                          f"it has {', '.join(blocks) or 'none'}")
    paths = {id(m): p for p, m in model.named_modules()}
    for block in removed:
        model.set_submodule(paths[id(blocks[block])], nn.Identity())


def model_config(model: nn.Module) -> dict[str, Any] | None:
    """``{"name", "kwargs"}`` for a model built by :func:`create_model` (None for anything else)."""
    return getattr(model, "senet_config", None)


def default_input_size(model: nn.Module) -> tuple[int, int, int]:
    """The (C, H, W) a model is designed for: its ``default_input_size`` attribute, else (3, 224, 224)."""
    return tuple(getattr(model, "default_input_size", (3, 224, 224)))
