"""The training recipe: one dataclass, read from YAML and/or CLI flags, validated before any work starts.

Defaults follow the paper (arXiv 1709.01507, section 5.1 and the CIFAR recipe it cites): SGD with momentum 0.9,
weight decay 1e-4, initial lr 0.1 divided by 10 at fixed epochs. With ``schedule="step"`` and no ``milestones``
the lr drops at 50% and 75% of the epochs (He et al.'s CIFAR schedule: iterations 32k and 48k of 64k);
``milestones`` lists other epochs (step schedule only: with cosine or onecycle they are refused).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet.errors import ConfigError
from senet.train.distributed import sharding_strategy_reason

__all__ = ["PRECISIONS", "RUNTIME_KEYS", "SCHEDULES", "TrainConfig", "load_config_file", "make_config"]

SCHEDULES = ("step", "cosine", "onecycle")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")

#: Keys a resumed run may change: where and how it runs, not what it computes.
RUNTIME_KEYS = frozenset({"out", "resume", "overwrite", "workers", "data_dir", "download", "devices", "strategy",
                          "num_nodes", "accelerator", "compile", "progress"})


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``batch_size`` is the global batch (split across processes)."""

    model: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    data_dir: str | None = None
    download: bool = False
    train_subset: int | None = None
    val_subset: int | None = None
    augment: bool = True
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: list[int] | None = None
    warmup: float = 0.0
    label_smoothing: float = 0.0
    precision: str = "32"
    channels_last: bool = False
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    num_nodes: int = 1
    sync_bn: bool = False
    seed: int = 0
    workers: int = 0
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    compile: bool = False
    progress: bool = True

    # ------------------------------------------------------------------ derived values
    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.data).strip("_") or "data"
        return Path("runs") / f"{self.model}_{slug}"

    def step_milestones(self) -> list[int]:
        """Epoch counts after which the step schedule divides the lr by 10 (``m`` = from epoch ``m + 1`` on)."""
        if self.milestones is not None:
            return sorted(int(m) for m in self.milestones)
        return sorted({m for m in (self.epochs // 2, (3 * self.epochs) // 4) if m >= 1})

    def recipe(self) -> dict[str, Any]:
        """The keys that decide what the run computes (everything except :data:`RUNTIME_KEYS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_KEYS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` naming the first bad value; return ``self`` when all is well."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(bool(self.model), "no model given: pass --model NAME (see `senet models`)")
        need(bool(self.data), "no dataset given: pass --data NAME (fashion-mnist, mnist, cifar10, cifar100, "
                              "imagefolder:PATH, synthetic)")
        need(isinstance(self.model_args, dict), f"model_args must be a mapping, got {self.model_args!r}")
        for name in ("epochs", "batch_size", "devices", "num_nodes"):
            value = getattr(self, name)
            need(_is_int(value) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        need(_is_int(self.workers) and self.workers >= 0, f"workers must be an integer >= 0, got {self.workers!r}")
        need(_is_int(self.seed), f"seed must be an integer, got {self.seed!r}")
        for name in ("train_subset", "val_subset"):
            value = getattr(self, name)
            need(value is None or (_is_int(value) and value >= 1), f"{name} must be an integer >= 1, got {value!r}")
        need(_is_num(self.lr) and self.lr > 0, f"lr must be a number > 0, got {self.lr!r}")
        need(_is_num(self.momentum) and 0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum!r}")
        need(_is_num(self.weight_decay) and self.weight_decay >= 0,
             f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        need(_is_num(self.label_smoothing) and 0 <= self.label_smoothing < 1,
             f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        need(_is_num(self.warmup) and 0 <= self.warmup < self.epochs,
             f"warmup must be a number of epochs in [0, epochs={self.epochs}), got {self.warmup!r}")
        if self.milestones is not None:
            need(isinstance(self.milestones, (list, tuple)) and all(_is_int(m) and 1 <= m <= self.epochs
                                                                    for m in self.milestones),
                 f"milestones must be epochs in 1..{self.epochs}, got {self.milestones!r}")
            need(self.schedule == "step",
                 f"milestones only apply to --schedule step (got --schedule {self.schedule}); drop --milestones")
        need(str(self.precision) in PRECISIONS,
             f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        need(self.batch_size % self.world_size == 0,
             f"batch_size {self.batch_size} (the global batch) must divide evenly over {self.world_size} processes")
        need(sharding_strategy_reason(self.strategy) is None, str(sharding_strategy_reason(self.strategy)))
        need(not (self.resume and self.overwrite), "--resume and --overwrite exclude each other")
        for key in ("num_classes", "in_chans"):
            need(key not in self.model_args or _is_int(self.model_args[key]),
                 f"model argument {key} must be an integer, got {self.model_args.get(key)!r}")
        return self


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value: Any) -> Any:
    """YAML gives ints for floats (``lr: 1``) and numbers for precision (``precision: 32``): accept both."""
    if value is None:
        return None
    if key in ("lr", "momentum", "weight_decay", "warmup", "label_smoothing") and _is_int(value):
        return float(value)
    if key == "precision":
        return str(value)
    if key in ("data_dir", "out") and isinstance(value, Path):
        return str(value)
    return value


def make_config(values: dict[str, Any], *, base: TrainConfig | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from ``base`` (or the defaults) with ``values`` on top; unknown keys raise."""
    doc = dict(base.to_dict()) if base is not None else {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, _FIELDS, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(_FIELDS)}"
            raise ConfigError(f"unknown training option {raw_key!r}{hint}")
        doc[key] = _coerce(key, value)
    return TrainConfig(**doc)


def load_config_file(path: str | Path, *, extra_keys: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a YAML recipe. Returns (training keys, extra keys such as ``models``/``seeds`` for ``senet compare``).

    ``path`` is a file, or the name of a recipe bundled with the package (``"fmnist_se_fast"``; see
    :mod:`senet.recipes`).

    Keys may use dashes or underscores. A key that is neither a :class:`TrainConfig` field nor in ``extra_keys``
    raises :class:`ConfigError`.
    """
    from senet._extras import require
    from senet.recipes import resolve_recipe

    yaml = require("yaml", "train", purpose="reading a --config file")
    path = resolve_recipe(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value, got {type(doc).__name__}")
    train_keys: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for raw_key, value in doc.items():
        key = str(raw_key).replace("-", "_")
        if key in extra_keys:
            extra[key] = value
        elif key in _FIELDS:
            train_keys[key] = value
        else:
            if key in ("models", "seeds"):
                raise ConfigError(f"{path} is a `senet compare` recipe (it sets {raw_key!r}): run `senet compare "
                                  f"--config {path}`, or drop models/seeds and give `senet train` one --model")
            known = list(_FIELDS) + list(extra_keys)
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{path}: unknown key {raw_key!r}{hint}")
    make_config(train_keys)  # type errors in the file surface here, naming the file's keys
    return train_keys, extra
