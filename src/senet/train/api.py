"""``senet.train.train``: turn a config (object, mapping or YAML file) into a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from senet._extras import require
from senet.errors import ConfigError
from senet.train.config import RUNTIME_KEYS, TrainConfig, load_config_file, make_config
from senet.train.loop import TrainResult, run_training
from senet.train.state import read_run_file

__all__ = ["resolve_config", "train"]

_DEFAULTS = TrainConfig().to_dict()


def resolve_config(config: TrainConfig | dict[str, Any] | str | Path) -> TrainConfig:
    """A validated :class:`TrainConfig`. With ``resume`` the run's saved recipe is used.

    On resume, options that change where or how the run executes (:data:`~senet.train.config.RUNTIME_KEYS`) may be
    given; any other option that differs from the saved run raises :class:`ConfigError`. For a mapping, its keys
    count as given; for a ``TrainConfig``, the fields that differ from the defaults do.
    """
    if isinstance(config, (str, Path)):
        config = load_config_file(config)[0]
    if isinstance(config, dict):
        given = {str(k).replace("-", "_"): v for k, v in config.items()}
        config = make_config(given)
    elif isinstance(config, TrainConfig):
        given = {k: v for k, v in config.to_dict().items() if v != _DEFAULTS[k]}
    else:
        raise ConfigError(f"train() takes a TrainConfig, a mapping or a YAML path, not {type(config).__name__}")
    if not config.resume:
        return config.validate()
    saved = make_config(read_run_file(config.out_dir))
    changed = [f"{k}={given[k]!r} (the run has {getattr(saved, k)!r})" for k in sorted(given)
               if k not in RUNTIME_KEYS and given[k] != getattr(saved, k)]
    if changed:
        raise ConfigError(f"--resume continues {config.out_dir} with its saved recipe; these differ: "
                          f"{'; '.join(changed)} (use a new --out to change the recipe)")
    runtime = {k: v for k, v in config.to_dict().items() if k in RUNTIME_KEYS and k in given}
    return make_config({**runtime, "out": str(config.out_dir), "resume": True}, base=saved).validate()


def train(config: TrainConfig | dict[str, Any] | str | Path) -> TrainResult:
    """Train a model as ``config`` says and return a :class:`~senet.train.loop.TrainResult`.

    Example::

        from senet.train import train
        result = train({"model": "se_resnet20", "data": "fashion-mnist", "epochs": 3, "out": "runs/se20"})
        print(result.best_top1)

    Every option is checked before any work; the output folder must be empty of runs unless ``resume`` or
    ``overwrite`` is set. Resuming a finished run returns its result without training.
    """
    config = resolve_config(config)
    require("lightning_fabric", "train", purpose="training")
    return run_training(config)
