"""Optional dependencies: a missing one ends in one line that names the ``pip install`` fixing it.

The core install (``pip install senet``) holds what the block, the models, complexity counting and safe loading need:
torch, torchvision, safetensors and numpy. Everything else belongs to an extra, and every import of such a package
goes through :func:`require`, so a user sees ``pip install "senet[train]"`` instead of a ``ModuleNotFoundError``
traceback from deep inside a command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from senet.errors import MissingExtraError

#: The distribution that provides each optional top-level module (where its name differs from the module's).
DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "lightning_fabric": "lightning-fabric",
    "onnxruntime": "onnxruntime",
    "mkdocs": "mkdocs",
}


__all__ = ["DISTRIBUTIONS", "MissingExtraError", "install_command", "require"]


def install_command(extra: str) -> str:
    """The command that installs ``extra`` (quoted, so shells do not expand the brackets)."""
    return f'pip install "senet[{extra}]"'


def require(module: str, extra: str, *, purpose: str | None = None) -> ModuleType:
    """Import and return ``module``; if it (not one of its own dependencies) is missing, raise one line naming ``extra``.

    ``purpose`` says what needs it (``"senet train"``, ``"ONNX export"``); it defaults to the module's name. A package
    that is installed but fails on a missing dependency of its own re-raises the original error: reinstalling senet
    would not fix that.
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name != top and not exc.name.startswith(f"{top}."):
            raise
        dist = DISTRIBUTIONS.get(top, top)
        error = MissingExtraError(f"{purpose or module} needs {dist}, part of the {extra!r} extra: "
                                  f"{install_command(extra)}")
        error.name = top
        raise error from None
