"""senet - Squeeze-and-Excitation networks in PyTorch (Hu, Shen, Albanie, Sun, Wu; arXiv 1709.01507).

The block and its variants (:mod:`senet.layers`), the paper's model families (:mod:`senet.models`), parameter and
multiply-add counts with the paper's convention (:mod:`senet.complexity`).
"""

import importlib
from typing import Any

from senet.errors import ConfigError, SenetError

__version__ = "0.1.0"

#: Public names and the modules that define them. They are imported on first use, so ``import senet`` (and the
#: ``senet`` command's ``--help``, ``--version`` and ``models``) does not load torch.
_LAZY = {
    "remove_se": "senet.analysis.surgery",
    "MACS_CONVENTION": "senet.complexity", "count_params": "senet.complexity", "model_complexity": "senet.complexity",
    "DatasetBundle": "senet.data", "load_dataset": "senet.data", "make_loader": "senet.data",
    "convert_weights": "senet.interop", "export_model": "senet.interop",
    "load_model": "senet.io", "save_model": "senet.io",
    **dict.fromkeys(("ECA", "AttentionBlock", "ChannelSpatialSE", "EffectiveSE", "GatherExcite", "SpatialSE",
                     "SqueezeExcite", "create_attn"), "senet.layers"),
    **dict.fromkeys(("create_model", "list_models", "named_se_blocks", "register_model"), "senet.models"),
    "fold_batchnorm": "senet.models.fold",
    "add_se": "senet.models.retrofit",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'senet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
