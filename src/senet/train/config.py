"""The training recipe: one dataclass, read from YAML and/or CLI flags, validated before any work starts.

Defaults follow the paper (arXiv 1709.01507, section 5.1 and the CIFAR recipe it cites): SGD with momentum 0.9,
weight decay 1e-4, initial lr 0.1 divided by 10 at fixed epochs. With ``schedule="step"`` and no ``milestones``
the lr drops at 50% and 75% of the epochs (He et al.'s CIFAR schedule: iterations 32k and 48k of 64k);
``milestones`` lists other epochs (step schedule only: with cosine or onecycle they are refused).

Fine-tuning keys: ``init_from`` (a run folder, a senet ``.safetensors`` file or a timm / Caffe-port / torchvision
checkpoint to start from, see :mod:`senet.train.init_from`), ``freeze`` (:data:`FREEZE_MODES`), ``optimizer``
(:data:`OPTIMIZERS`), ``clip_grad_norm``. Evaluation protocol keys: ``val_split`` (the part of the training files
held out for validation where a dataset has no validation split), ``test_subset``; ``image_size`` is the input
side the model is trained and evaluated at.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet import checks
from senet.errors import ConfigError

__all__ = ["FREEZE_MODES", "OPTIMIZERS", "PRECISIONS", "RUNTIME_KEYS", "SCHEDULES", "TrainConfig", "field_check",
           "load_config_file",
           "make_config"]

SCHEDULES = ("step", "cosine", "onecycle")
#: ``none``; ``all-but-head`` trains the classifier only; ``all-but-head-and-se`` the classifier and every SE block.
FREEZE_MODES = ("none", "all-but-head", "all-but-head-and-se")
OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("32", "32-true", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps", "tpu")
#: Lightning Fabric strategies that shard the model across processes: refused, because checkpoints are the full
#: ``state_dict`` saved by rank 0, which a sharded model does not hold (and Fabric runs FSDP on GPUs only).
SHARDING_STRATEGIES = ("fsdp", "deepspeed")

#: Keys a resumed run may change: where and how it runs, not what it computes.
RUNTIME_KEYS = frozenset({"out", "resume", "overwrite", "workers", "data_dir", "download", "devices", "strategy",
                          "num_nodes", "accelerator", "compile", "progress", "tensorboard"})


class Flag(checks.Check):
    """``True`` or ``False`` (YAML ``yes``/``no`` arrive as booleans); numbers and text are refused."""

    kind = "bool"

    def describe(self) -> str:
        return "true or false"

    def __call__(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(value)
        return value


class Mapping(checks.Check):
    """A mapping with text keys (``model_args``: keyword arguments for the model builder)."""

    kind = "mapping"

    def describe(self) -> str:
        return "a mapping of name: value"

    def __call__(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
            raise self.fail(value)
        return dict(value)


class Epochs(checks.Check):
    """A list of epoch numbers >= 1 (the step schedule's ``milestones``; their upper bound is checked with
    ``epochs``)."""

    kind = "int-list"
    item = checks.Int(1)

    def describe(self) -> str:
        return "a list of epoch numbers >= 1"

    def __call__(self, value: Any) -> list[int]:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(value)
        try:
            return [self.item(v) for v in value]
        except ConfigError:
            raise self.fail(value) from None


class FractionOrCount(checks.Check):
    """``val_split``: a fraction of the training images in [0, 1), or a whole number of images >= 0 (0 holds out
    nothing)."""

    kind = "float"
    lo, hi, lo_open, hi_open = 0, None, False, False  # the bounds a generic float check would report

    def describe(self) -> str:
        return "a fraction in [0, 1) or a number of images >= 0"

    def __call__(self, value: Any) -> float | int:
        number = value
        if isinstance(value, str):
            text = value.strip()
            try:
                number = int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    raise self.fail(value) from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise self.fail(value)
        if isinstance(number, float) and number.is_integer() and number >= 1:
            number = int(number)
        if number < 0 or (isinstance(number, float) and number >= 1):
            raise self.fail(value)
        return number


def _check(check: checks.Check, default: Any = None, **kwargs: Any) -> Any:
    """A dataclass field whose values ``check`` converts or refuses (fields without one get a check by type)."""
    return field(default=default, metadata={"check": check}, **kwargs)


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``batch_size`` is the global batch (split across processes).

    Every field is checked by one :mod:`senet.checks` object, declared here with ``_check(...)`` or derived from
    the annotation (``int``, ``float``, ``str``, ``bool``; ``X | None`` also takes None): the same object checks the
    YAML value and the command-line flag (:func:`field_check`). A new field only declares its check.
    """

    model: str = _check(checks.Text("a model name"), "")
    model_args: dict[str, Any] = field(default_factory=dict, metadata={"check": Mapping()})
    data: str = _check(checks.Text("a dataset name"), "")
    data_dir: str | None = _check(checks.Path("write-dir"))
    download: bool = False
    train_subset: int | None = _check(checks.Int(1))
    val_subset: int | None = _check(checks.Int(1))
    augment: bool = True
    random_erasing: float = _check(checks.Float(0, 1), 0.0)
    epochs: int = _check(checks.Int(1, 100_000), 30)
    batch_size: int = _check(checks.Int(1, 1 << 20), 128)
    lr: float = _check(checks.Float(0, 100, lo_open=True), 0.1)
    momentum: float = _check(checks.Float(0, 1, hi_open=True), 0.9)
    weight_decay: float = _check(checks.Float(0, 1), 1e-4)
    schedule: str = _check(checks.Choice(SCHEDULES), "step")
    milestones: list[int] | None = field(default=None, metadata={"check": Epochs()})
    warmup: float = _check(checks.Float(0), 0.0)
    label_smoothing: float = _check(checks.Float(0, 1, hi_open=True), 0.0)
    precision: str = _check(checks.Choice(PRECISIONS), "32")
    channels_last: bool = False
    accelerator: str = _check(checks.Choice(ACCELERATORS), "auto")
    devices: int = _check(checks.Int(1, 4096), 1)
    strategy: str = _check(checks.Text("a Lightning Fabric strategy"), "auto")
    num_nodes: int = _check(checks.Int(1, 100_000), 1)
    sync_bn: bool = False
    seed: int = _check(checks.Int(0), 0)
    workers: int = _check(checks.Int(0, 1024), 0)
    out: str | None = _check(checks.Path("write-dir"))
    resume: bool = False
    overwrite: bool = False
    compile: bool = False
    progress: bool = True
    tensorboard: bool = _check(Flag(), False)
    val_split: float | int | None = _check(FractionOrCount())
    test_subset: int | None = _check(checks.Int(1))
    image_size: int | None = _check(checks.Int(8, checks.IMAGE_SIDE_MAX))
    init_from: str | None = _check(checks.Text("a run folder or weights file"))
    freeze: str = _check(checks.Choice(FREEZE_MODES), "none")
    optimizer: str = _check(checks.Choice(OPTIMIZERS), "sgd")
    clip_grad_norm: float | None = _check(checks.Float(0, lo_open=True))

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
        for key, value in check_values(self.to_dict()).items():
            setattr(self, key, value)
        need(self.warmup < self.epochs,
             f"warmup must be a number of epochs in [0, epochs={self.epochs}), got {self.warmup!r}")
        if self.milestones is not None:
            need(all(m <= self.epochs for m in self.milestones),
                 f"milestones must be epochs in 1..{self.epochs}, got {self.milestones!r}")
            need(self.schedule == "step",
                 f"milestones only apply to --schedule step (got --schedule {self.schedule}); drop --milestones")
        need(self.batch_size % self.world_size == 0,
             f"batch_size {self.batch_size} (the global batch) must divide evenly over {self.world_size} processes")
        need(not any(name in self.strategy.lower() for name in SHARDING_STRATEGIES),
             f"strategy {self.strategy!r} is not offered: it shards the model, and senet's checkpoints are the full "
             f"model saved by rank 0, so such a run could not be trusted to resume; use --strategy ddp")
        need(not (self.resume and self.overwrite), "--resume and --overwrite exclude each other")
        need(self.random_erasing == 0 or self.augment,
             "--random-erasing is a train augmentation: it cannot be combined with --no-augment")
        for key in ("num_classes", "in_chans"):
            need(key not in self.model_args or _is_int(self.model_args[key]),
                 f"model argument {key} must be an integer, got {self.model_args.get(key)!r}")
        return self


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checks_by_field() -> dict[str, tuple[checks.Check, bool]]:
    """Each field's check and whether it accepts None: declared in its metadata, else derived from its type."""
    by_type = {int: checks.Int(), float: checks.Float(), str: checks.Text(), bool: Flag()}
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in dataclasses.fields(TrainConfig):
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if optional else hint
        check = f.metadata.get("check") or by_type.get(base)
        if check is None:
            raise TypeError(f"TrainConfig.{f.name} ({hint}) needs a check: declare one with _check(...)")
        out[f.name] = (check, optional)
    return out


def field_check(name: str) -> checks.Check:
    """The check of the :class:`TrainConfig` field ``name`` (the command line uses it for the matching flag)."""
    return _CHECKS[name][0]


def check_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (field name -> value) converted by each field's check; the first bad one raises, named."""
    out = {}
    for key, value in values.items():
        check, optional = _CHECKS[key]
        if value is None and optional:
            out[key] = None
            continue
        try:
            out[key] = check(value)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    return out


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_CHECKS = _checks_by_field()


def make_config(values: dict[str, Any], *, base: TrainConfig | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from ``base`` (or the defaults) with ``values`` on top; unknown keys raise."""
    doc = dict(base.to_dict()) if base is not None else {}
    given = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, _FIELDS, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(_FIELDS)}"
            raise ConfigError(f"unknown training option {raw_key!r}{hint}")
        given[key] = value
    doc.update(check_values(given))
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
    try:
        check_values(train_keys)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return train_keys, extra
