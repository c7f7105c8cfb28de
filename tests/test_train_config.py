"""Recipe validation, YAML loading, CLI precedence, lr schedules and metric helpers (no training here)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from senet.cli import build_parser
from senet.cli.train import recipe_from_args
from senet.errors import ConfigError
from senet.train.config import TrainConfig, load_config_file, make_config
from senet.train.metrics import ClassificationMeter, topk_correct
from senet.train.schedules import lr_factor


def _cfg(**kw) -> TrainConfig:
    return make_config({"model": "notebook_simple", "data": "synthetic", **kw})


def test_defaults_follow_the_paper():
    cfg = _cfg()
    assert (cfg.momentum, cfg.weight_decay, cfg.schedule, cfg.lr) == (0.9, 1e-4, "step", 0.1)
    assert _cfg(epochs=100).step_milestones() == [50, 75]
    assert _cfg(epochs=100, milestones=[30, 60, 90]).step_milestones() == [30, 60, 90]
    cfg.validate()


@pytest.mark.parametrize("bad, words", [
    ({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"), ({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs"),
    ({"schedule": "linear"}, "schedule"), ({"momentum": 1.0}, "momentum"), ({"warmup": 5.0, "epochs": 5}, "warmup"),
    ({"precision": "8"}, "precision"), ({"devices": 2, "batch_size": 33}, "divide"),
    ({"milestones": [0]}, "milestones"), ({"resume": True, "overwrite": True}, "exclude"),
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"train_subset": 0}, "train_subset"),
])
def test_invalid_hyperparameters_raise_one_clear_error(bad, words):
    with pytest.raises(ConfigError, match=words):
        _cfg(**bad).validate()


def test_missing_model_or_data_is_named():
    with pytest.raises(ConfigError, match="--model"):
        make_config({"data": "synthetic"}).validate()
    with pytest.raises(ConfigError, match="--data"):
        make_config({"model": "notebook_simple"}).validate()


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="batch_size"):
        make_config({"batchsize": 3})


def test_yaml_file_keys_and_unknown_keys(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("model: notebook_simple\ndata: synthetic\nbatch-size: 64\nlr: 1\nprecision: 32\n"
                    "models: [a, b]\n")
    train_keys, extra = load_config_file(good, extra_keys=("models",))
    cfg = make_config(train_keys)
    assert cfg.batch_size == 64 and cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.precision == "32"
    assert extra == {"models": ["a", "b"]}
    with pytest.raises(ConfigError, match="models"):
        load_config_file(good)  # `models` is a compare key, not a train key
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: notebook_simple\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config_file(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(tmp_path / "list.yaml")


def test_cli_flags_override_the_config_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("data: synthetic\nepochs: 7\nlr: 0.3\nmodel_args: {reduction: 4}\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--lr", "0.05", "-m", "reduction=8"])
    values, _ = recipe_from_args(args)
    assert values["epochs"] == 7 and values["lr"] == 0.05 and values["model_args"] == {"reduction": 8}
    assert "momentum" not in values  # flags not given stay out, so the file or the defaults decide


def test_step_schedule_divides_by_ten_after_each_milestone():
    kw = {"schedule": "step", "total_steps": 100, "steps_per_epoch": 10, "milestones": [5, 8]}
    assert lr_factor(49, **kw) == 1.0
    assert lr_factor(50, **kw) == pytest.approx(0.1)
    assert lr_factor(80, **kw) == pytest.approx(0.01)


def test_cosine_onecycle_and_warmup_shapes():
    kw = {"total_steps": 100, "steps_per_epoch": 10}
    assert lr_factor(0, schedule="cosine", **kw) == 1.0
    assert lr_factor(50, schedule="cosine", **kw) == pytest.approx(0.5)
    assert lr_factor(100, schedule="cosine", **kw) == pytest.approx(0.0, abs=1e-12)
    one = [lr_factor(s, schedule="onecycle", **kw) for s in range(101)]
    assert max(one) == pytest.approx(1.0) and one.index(max(one)) == 30
    assert one[0] == pytest.approx(1 / 25) and one[-1] < 1e-4
    warm = [lr_factor(s, schedule="step", warmup_steps=10, **kw) for s in range(12)]
    assert warm[0] == pytest.approx(0.1) and warm[9] == 1.0 and all(a < b for a, b in itertools.pairwise(warm[:10]))


def test_topk_and_confusion():
    logits = torch.tensor([[5.0, 4.0, 0.0], [0.0, 1.0, 2.0], [3.0, 2.0, 1.0]])
    target = torch.tensor([1, 2, 2])
    assert topk_correct(logits, target, (1, 2, 5)) == [1, 2, 3]
    meter = ClassificationMeter(3)
    meter.update(logits, target, loss_sum=3.0)
    s = meter.summary()
    assert (s["top1"], s["count"], s["loss"]) == (pytest.approx(1 / 3), 3, 1.0)
    assert meter.confusion.tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 1]]
    assert meter.per_class_accuracy() == [None, 0.0, 0.5]
    assert not math.isnan(s["top5"])


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_milestones_are_refused_outside_the_step_schedule(schedule):
    with pytest.raises(ConfigError, match="milestones only apply to --schedule step"):
        _cfg(schedule=schedule, milestones=[2], epochs=4).validate()
    _cfg(schedule="step", milestones=[2], epochs=4).validate()


def test_time_to_accuracy_config_is_a_train_recipe():
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "src" / "senet" / "configs" / "fmnist_se_fast.yaml"
    args = build_parser().parse_args(["train", "--config", str(path), "--epochs", "1"])
    values, extra = recipe_from_args(args)
    cfg = make_config(values).validate()
    assert extra == {} and cfg.epochs == 1  # flags override the file
    assert (cfg.model, cfg.data, cfg.schedule, cfg.batch_size, cfg.lr) == ("se_resnet20", "fashion-mnist",
                                                                            "onecycle", 256, 0.2)
    assert cfg.channels_last and cfg.label_smoothing == 0.1 and cfg.precision == "bf16-mixed"
    assert make_config(load_config_file(path)[0]).epochs == 10
    assert "93%" in path.read_text() and "docs/performance.md" in path.read_text()


def test_train_refuses_a_compare_recipe_and_points_to_compare(capsys):
    import pathlib

    from senet.cli import main

    demo = pathlib.Path(__file__).parent.parent / "src" / "senet" / "configs" / "demo.yaml"
    assert main(["train", "--config", str(demo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("senet: error:") and f"senet compare --config {demo}" in err and "\n" not in err


def test_shipped_train_configs_validate_and_name_a_measured_result():
    """Every `senet train` config in senet/configs/ is a valid recipe for a registered model on real data."""
    import pathlib

    from senet import list_models

    root = pathlib.Path(__file__).parent.parent / "src" / "senet" / "configs"
    compare_recipes = {"demo.yaml", "se_vs_plain.yaml"}  # `senet compare` recipes: tests/test_compare.py
    paths = [p for p in sorted(root.glob("*.yaml")) if p.name not in compare_recipes]
    assert {p.name for p in paths} >= {"fmnist_se_fast.yaml", "fmnist_se_94.yaml", "fmnist_se_hour.yaml"}
    for path in paths:
        cfg = make_config(load_config_file(path)[0]).validate()
        assert cfg.model in list_models() and cfg.data == "fashion-mnist"
        assert "%" in path.read_text() and "time_to_accuracy.py --only" in path.read_text()


@pytest.mark.parametrize("bad,words", [
    ({"freeze": "backbone"}, "freeze: expected"),
    ({"optimizer": "adam"}, "optimizer: expected"),
    ({"clip_grad_norm": 0}, "clip_grad_norm: expected"),
    ({"val_split": -0.1}, "val_split: expected"),
    ({"image_size": 4}, "image_size: expected"),
    ({"test_subset": 0}, "test_subset: expected"),
])
def test_fine_tuning_options_are_checked(bad, words):
    with pytest.raises(ConfigError, match=words):
        make_config({"model": "resnet20", "data": "synthetic", **bad}).validate()


def test_fine_tuning_flags_reach_the_recipe():
    args = build_parser().parse_args(["train", "--model", "resnet20", "--data", "fashion-mnist", "--val-split",
                                      "5000", "--image-size", "64", "--init-from", "w.pth", "--freeze",
                                      "all-but-head-and-se", "--optimizer", "adamw", "--clip-grad-norm", "2",
                                      "--test-subset", "100"])
    values, _ = recipe_from_args(args)
    config = make_config({**values, "model": "resnet20"}).validate()
    assert (config.val_split, config.image_size, config.init_from, config.freeze, config.optimizer,
            config.clip_grad_norm, config.test_subset) == (5000, 64, "w.pth", "all-but-head-and-se", "adamw", 2.0,
                                                           100)
    assert make_config({**values, "model": "resnet20", "val_split": 0.2}).val_split == 0.2


def test_adamw_starts_from_a_small_lr_unless_one_is_given():
    from senet.train.api import resolve_config

    assert resolve_config({"model": "resnet20", "data": "synthetic", "optimizer": "adamw"}).lr == 1e-3
    assert resolve_config({"model": "resnet20", "data": "synthetic", "optimizer": "adamw", "lr": 0.01}).lr == 0.01
    assert resolve_config({"model": "resnet20", "data": "synthetic"}).lr == 0.1
