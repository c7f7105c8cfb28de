"""senet - Squeeze-and-Excitation networks in PyTorch (Hu, Shen, Albanie, Sun, Wu; arXiv 1709.01507).

The block and its variants (:mod:`senet.layers`), the paper's model families (:mod:`senet.models`), parameter and
multiply-add counts with the paper's convention (:mod:`senet.complexity`), safe saving and loading (:mod:`senet.io`),
and, with the optional extras, training (:mod:`senet.train`), excitation analysis (:mod:`senet.analysis`), weight
conversion and export (:mod:`senet.interop`) and the Keras notebook's API (:mod:`senet.keras`).

The public names below are imported on first use, so ``import senet`` is instant and does not load torch: the
``senet`` command answers ``--help`` and ``--version`` without it, and a name that needs an optional extra fails
only when it is used, naming the ``pip install`` that provides it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from senet._version import __version__

#: Where each public name lives; ``senet.<name>`` imports that module on first access.
_WHERE = {
    "ECA": "senet.layers",
    "AttentionBlock": "senet.layers",
    "ChannelSpatialSE": "senet.layers",
    "EffectiveSE": "senet.layers",
    "GatherExcite": "senet.layers",
    "SpatialSE": "senet.layers",
    "SqueezeExcite": "senet.layers",
    "create_attn": "senet.layers",
    "create_model": "senet.models",
    "list_models": "senet.models",
    "named_se_blocks": "senet.models",
    "register_model": "senet.models",
    "add_se": "senet.models.retrofit",
    "fold_batchnorm": "senet.models.fold",
    "MACS_CONVENTION": "senet.complexity",
    "count_params": "senet.complexity",
    "model_complexity": "senet.complexity",
    "load_model": "senet.io",
    "save_model": "senet.io",
    "ConfigError": "senet.errors",
    "SenetError": "senet.errors",
    "DatasetBundle": "senet.data",
    "load_dataset": "senet.data",
    "make_loader": "senet.data",
    "remove_se": "senet.analysis.surgery",
    "convert_weights": "senet.interop",
    "export_model": "senet.interop",
}

#: Subpackages reachable as attributes after a plain ``import senet`` (``senet.models.resnet``), as they were when
#: this module imported them eagerly. ``senet.keras`` is left out: it needs an extra, so it is imported by name.
_SUBMODULES = ("analysis", "complexity", "data", "errors", "interop", "io", "layers", "models", "paper", "train")

__all__ = [
    "ECA",
    "MACS_CONVENTION",
    "AttentionBlock",
    "ChannelSpatialSE",
    "ConfigError",
    "DatasetBundle",
    "EffectiveSE",
    "GatherExcite",
    "SenetError",
    "SpatialSE",
    "SqueezeExcite",
    "__version__",
    "add_se",
    "convert_weights",
    "count_params",
    "create_attn",
    "create_model",
    "export_model",
    "fold_batchnorm",
    "list_models",
    "load_dataset",
    "load_model",
    "make_loader",
    "model_complexity",
    "named_se_blocks",
    "register_model",
    "remove_se",
    "save_model",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"senet.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'senet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static type checkers and IDEs see the real names
    from senet.analysis.surgery import remove_se
    from senet.complexity import MACS_CONVENTION, count_params, model_complexity
    from senet.data import DatasetBundle, load_dataset, make_loader
    from senet.errors import ConfigError, SenetError
    from senet.interop import convert_weights, export_model
    from senet.io import load_model, save_model
    from senet.layers import (
        ECA,
        AttentionBlock,
        ChannelSpatialSE,
        EffectiveSE,
        GatherExcite,
        SpatialSE,
        SqueezeExcite,
        create_attn,
    )
    from senet.models import create_model, list_models, named_se_blocks, register_model
    from senet.models.fold import fold_batchnorm
    from senet.models.retrofit import add_se
