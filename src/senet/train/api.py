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
        config = _with_source_architecture(_with_optimizer_defaults(config, given))
        _check_source_outside_out(config)
        return _with_resolved_val_split(config).validate()
    saved = make_config(read_run_file(config.out_dir))
    changed = [f"{k}={given[k]!r} (the run has {getattr(saved, k)!r})" for k in sorted(given)
               if k not in RUNTIME_KEYS and not _same_as_saved(k, given[k], getattr(saved, k))]
    if changed:
        raise ConfigError(f"--resume continues {config.out_dir} with its saved recipe; these differ: "
                          f"{'; '.join(changed)} (use a new --out to change the recipe)")
    runtime = {k: v for k, v in config.to_dict().items() if k in RUNTIME_KEYS and k in given}
    return make_config({**runtime, "out": str(config.out_dir), "resume": True}, base=saved).validate()


def _check_source_outside_out(config: TrainConfig) -> None:
    """``--init-from`` inside ``--out``: writing the run there (``--overwrite`` first removes the folder's weights)
    would replace the weights the run starts from."""
    if not config.init_from:
        return
    source, out = Path(config.init_from).expanduser().resolve(), config.out_dir.expanduser().resolve()
    if source == out or source.is_relative_to(out):
        raise ConfigError(f"--init-from {config.init_from} is inside --out {config.out_dir}: the run would write over "
                          f"the weights it starts from; choose another --out")


def _with_resolved_val_split(config: TrainConfig) -> TrainConfig:
    """The held-out part written into the run's recipe as a number (not "the default"), so evaluate, excite and
    prune rebuild the same split even if :data:`senet.data.registry.DEFAULT_VAL_SPLIT` changes later."""
    from senet.data.registry import DEFAULT_VAL_SPLIT, HOLDOUT_DATASETS, dataset_base_name

    if config.val_split is None and dataset_base_name(config.data) in HOLDOUT_DATASETS:
        return make_config({"val_split": DEFAULT_VAL_SPLIT}, base=config)
    return config


#: The lr AdamW starts from when none is given (the SGD default of 0.1 would diverge).
ADAMW_DEFAULT_LR = 1e-3


def _with_optimizer_defaults(config: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    if config.optimizer == "adamw" and "lr" not in given:
        return make_config({"lr": ADAMW_DEFAULT_LR}, base=config)
    return config


def _with_source_architecture(config: TrainConfig) -> TrainConfig:
    """With ``init_from``: the model defaults to the source's, and the source's architecture options (stride
    placement, stem pooling, SE width) become model options unless given, so the model computes the source's
    function. Written into the run's recipe, so a resumed run rebuilds the same model without the source."""
    if not config.init_from:
        return config
    from senet.train.init_from import read_source, source_model_args

    source = read_source(config.init_from)
    args = {**source_model_args(source), **config.model_args} if config.model in ("", source.model) else {
        **{k: v for k, v in source_model_args(source).items() if k in _STRUCTURE_ARGS}, **config.model_args}
    return make_config({"model": config.model or source.model, "model_args": args}, base=config)


#: Options that fix where a ResNet computes what; kept when fine-tuning into another model of the family (a plain
#: ResNet's weights into an SE-ResNet), unlike options of the source's own attention blocks.
_STRUCTURE_ARGS = ("stride_in_1x1", "stem", "stem_width", "stem_pool", "relu_before_attn")


def _same_as_saved(key: str, given: Any, saved: Any) -> bool:
    """``model_args`` given again on resume may be a part of the saved ones (``init_from`` added the rest)."""
    if key == "model_args" and isinstance(given, dict) and isinstance(saved, dict):
        return all(k in saved and saved[k] == v for k, v in given.items())
    return given == saved


def train(config: TrainConfig | dict[str, Any] | str | Path) -> TrainResult:
    """Train a model as ``config`` says and return a :class:`~senet.train.loop.TrainResult`.

    Example::

        from senet.train import train
        result = train({"model": "se_resnet20", "data": "fashion-mnist", "epochs": 3, "out": "runs/se20"})
        print(result.best_top1)

    Every option is checked before any work; the output folder must be empty of runs unless ``resume`` or
    ``overwrite`` is set. Resuming a finished run returns its result without training.

    Fine-tuning: ``init_from`` names the weights to start from (:mod:`senet.train.init_from`); ``model`` then
    defaults to the source's. ``optimizer="adamw"`` starts from lr 1e-3 unless ``lr`` is given.
    """
    config = resolve_config(config)
    require("lightning_fabric", "train", purpose="training")
    return run_training(config)
