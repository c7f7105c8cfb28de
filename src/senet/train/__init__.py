"""Training, evaluation and comparison of models on real data (Lightning Fabric underneath).

* :func:`train` - one run into a folder (weights, config, metrics, best/last checkpoints, resume state);
* :func:`evaluate` - top-1/top-5/loss, per-class accuracy and a confusion matrix for a saved model;
* :func:`compare` - several models trained with one recipe and several seeds, with a report and curves.

Names are imported lazily, so ``import senet.train`` does not load Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TrainConfig", "TrainResult", "compare", "evaluate", "load_config_file", "train"]

_WHERE = {
    "TrainConfig": "senet.train.config",
    "load_config_file": "senet.train.config",
    "TrainResult": "senet.train.loop",
    "train": "senet.train.api",
    "evaluate": "senet.train.evaluation",
    "compare": "senet.train.comparison",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'senet.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
