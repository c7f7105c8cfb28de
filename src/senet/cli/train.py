"""``senet train``: train one model on one dataset into a run folder (see :mod:`senet.train`)."""

from __future__ import annotations

import argparse
from typing import Any

from senet import checks
from senet.cli._common import ModelName, add_model_args, parse_model_args


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """The options shared by ``senet train`` and ``senet compare``; every default is None = "not given"."""
    g = p.add_argument_group("data")
    g.add_argument("--data", help="fashion-mnist, mnist, cifar10, cifar100, imagefolder:PATH or synthetic[:opts]")
    g.add_argument("--data-dir", help="folder holding the dataset files (default: $SENET_DATA, system paths)")
    g.add_argument("--download", action="store_true", default=None, help="fetch the dataset if it is missing")
    g.add_argument("--train-subset", type=int, metavar="N", help="train on a fixed random N images")
    g.add_argument("--val-subset", type=int, metavar="N", help="validate on a fixed random N images")
    g.add_argument("--no-augment", dest="augment", action="store_false", default=None, help="no train augmentation")
    g.add_argument("--random-erasing", type=float, metavar="P",
                   help="erase a random box of each training image (random pixel values) with probability P "
                        "(Zhong et al. 2017; default 0)")
    g.add_argument("--val-split", metavar="F|N",
                   help="fashion-mnist/mnist/cifar: part of the training files held out (seeded) for validation and "
                        "best/, a fraction or a number of images (default 0.1); 0 holds out nothing (no best/). The "
                        "test files are evaluated once, at the end")
    g.add_argument("--test-subset", type=int, metavar="N", help="test the selected model on a fixed random N images")
    g.add_argument("--image-size", type=int, metavar="S",
                   help="input side: image folders crop to S (eval resizes to S*256/224 first; default 224); "
                        "in-memory sets are resampled to S (e.g. 64 to feed 28x28 images to an ImageNet ResNet)")
    g.add_argument("--workers", type=int, help="data loader worker processes (default 0)")
    g = p.add_argument_group("optimisation (defaults follow the paper: SGD, momentum 0.9, weight decay 1e-4)")
    g.add_argument("--epochs", type=int, help="epochs (default 30)")
    g.add_argument("--batch-size", type=int, help="global batch size, split over processes (default 128)")
    g.add_argument("--lr", type=float, help="peak learning rate (default 0.1)")
    g.add_argument("--momentum", type=float, help="SGD momentum; AdamW's beta_1 (default 0.9)")
    g.add_argument("--weight-decay", type=float, help="L2 weight decay (default 1e-4)")
    g.add_argument("--schedule", choices=("step", "cosine", "onecycle"),
                   help="step: lr/10 at 50%% and 75%% of the epochs (or --milestones); cosine; onecycle (default step)")
    g.add_argument("--milestones", type=int, nargs="+", metavar="EPOCH",
                   help="epochs after which the step schedule divides the lr by 10 (--schedule step only)")
    g.add_argument("--warmup", type=float, metavar="EPOCHS", help="linear lr warmup, in epochs (default 0)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing of the loss (default 0)")
    g.add_argument("--seed", type=int, help="seed for weights, data order and augmentation (default 0)")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--init-from", metavar="SOURCE",
                   help="start from these weights: a run folder, a senet .safetensors file, or a timm / Caffe-port / "
                        "torchvision checkpoint (converted on the way in); --model defaults to the source's")
    g.add_argument("--freeze", choices=("none", "all-but-head", "all-but-head-and-se"),
                   help="train only the classifier (all-but-head) or the classifier and the SE blocks; frozen "
                        "BatchNorms keep their running statistics (default none)")
    g.add_argument("--optimizer", choices=("sgd", "adamw"),
                   help="sgd (the paper's; default) or adamw (no weight decay on biases and norms; lr 1e-3 unless "
                        "--lr is given)")
    g.add_argument("--clip-grad-norm", type=float, metavar="MAX", help="clip the gradients' global L2 norm to MAX")
    g = p.add_argument_group("hardware")
    g.add_argument("--precision", choices=("32", "bf16-mixed", "16-mixed"), help="numeric precision (default 32)")
    g.add_argument("--accelerator", help="cpu, cuda, mps or auto (default auto)")
    g.add_argument("--devices", type=int, help="devices (processes) per node (default 1)")
    g.add_argument("--strategy", help="auto, ddp or ddp_spawn (Lightning Fabric strategies that keep the whole model "
                                      "on every process; sharding ones such as fsdp are refused; default auto)")
    g.add_argument("--num-nodes", type=int, help="machines (default 1)")
    g.add_argument("--sync-bn", action="store_true", default=None,
                   help="BatchNorm statistics over the global batch of all processes (no-op on one process)")
    g.add_argument("--channels-last", action="store_true", default=None, help="channels-last memory format")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    g.add_argument("--tensorboard", action="store_true", default=None,
                   help='also write TensorBoard event files to OUT/tensorboard (needs pip install "senet[tensorboard]")')
    g = p.add_argument_group("run folder")
    g.add_argument("--config", metavar="FILE.yaml", type=Recipe(),
                   help="YAML file with any of these options (flags override it)")
    g.add_argument("--resume", action="store_true", default=None, help="continue the run already in --out")
    g.add_argument("--overwrite", action="store_true", default=None, help="replace a run already in --out")


class Recipe(checks.Path):
    """A YAML file, or the name of a recipe bundled with the package (``fmnist_se_fast``; see senet.recipes)."""

    def __init__(self) -> None:
        super().__init__("read-file")

    def describe(self) -> str:
        return "a YAML file or the name of a bundled recipe"

    def __call__(self, value: Any) -> str:
        from senet.recipes import resolve_recipe

        if not isinstance(value, str) or not value.strip():
            raise self.fail(value)
        try:
            resolve_recipe(value)
        except (FileNotFoundError, OSError) as exc:
            raise checks.ConfigError(str(exc)) from None
        return value


_NOT_RECIPE = {"command", "func", "config", "model_arg", "models", "seeds", "model"}


def use_config_checks(p: argparse.ArgumentParser) -> None:
    """Check each flag that sets a :class:`~senet.train.config.TrainConfig` field with that field's own check,
    so a flag and its YAML key accept the same values (flags added later included)."""
    from senet.train.config import field_check

    fields = _config_fields() - {"model"}  # --model keeps ModelName: a registered name, with close matches
    for action in p._actions:
        if action.dest in fields and action.nargs != 0:
            check = field_check(action.dest)
            # a list option (--milestones 10 20) is parsed one item at a time
            action.type = getattr(check, "item", check) if action.nargs in ("+", "*") else check


def _config_fields() -> set[str]:
    import dataclasses

    from senet.train.config import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def recipe_from_args(args: argparse.Namespace, extra_keys: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict]:
    """(training options, extra file keys): the --config file's values, then every flag actually given."""
    from senet.train.config import load_config_file

    values, extra = load_config_file(args.config, extra_keys=extra_keys) if args.config else ({}, {})
    if getattr(args, "data", None) is not None and getattr(args, "val_split", None) is None:
        _drop_file_val_split_for(args.data, values)
    for key, value in vars(args).items():
        if key not in _NOT_RECIPE and value is not None:
            values[key] = value
    if getattr(args, "model_arg", None):
        values["model_args"] = {**values.get("model_args", {}), **parse_model_args(args.model_arg)}
    if getattr(args, "model", None) is None and "model" in values:  # from the file: as checked as --model
        ModelName()(values["model"])
    return values, extra


def _drop_file_val_split_for(data: str, values: dict[str, Any]) -> None:
    """A recipe file's ``val_split`` belongs to its own dataset: with ``--data`` naming one that validates on its
    own images (an image folder's val/, the synthetic set), the file's value is dropped instead of refused."""
    from senet.data.registry import HOLDOUT_DATASETS, dataset_base_name

    if dataset_base_name(data) not in HOLDOUT_DATASETS:
        values.pop("val_split", None)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a dataset (Lightning Fabric; CPU, GPUs, nodes)",
                       description="Train one model; writes DIR/model.safetensors, config.json, metrics.csv, best/, "
                                   "and a resume state. Example: senet train --model se_resnet20 "
                                   "--data fashion-mnist --epochs 10 --out runs/se20")
    p.add_argument("--model", type=ModelName(), help="registered model name (see senet models)")
    add_model_args(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/<model>_<data>)")
    add_recipe_args(p)
    use_config_checks(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senet.train import train
    from senet.train.distributed import is_global_zero

    values, _ = recipe_from_args(args)
    if args.model is not None:
        values["model"] = args.model
    result = train(values)
    if not is_global_zero():  # every process of a distributed job returns here; one summary is enough
        return 0
    if result.best_epoch:
        print(f"best val top-1 {result.best_top1:.4f} at epoch {result.best_epoch}", end="; ")
    if result.test is not None:
        print(f"test top-1 {result.test['top1']:.4f} ({result.test['weights']} model)", end="; ")
    print(f"run folder: {result.out}")
    return 0
