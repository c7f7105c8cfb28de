"""Seams between features that met in one merge: each test fails on the code before its fix."""

from __future__ import annotations

import pytest
import torch

import senet
from senet.cli import main
from senet.errors import ConfigError
from senet.models import create_model
from senet.train.api import resolve_config
from senet.train.config import make_config
from senet.train.optim import make_optimizer


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("senet: error:"), err
    return err[0]


def test_train_refuses_an_unknown_model_while_parsing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "se_resnet2O", "--data", "synthetic", "--out", str(out)]) == 2
    assert "se_resnet20" in _one_line_error(capsys)  # the close match is named
    assert not out.exists()  # refused before the run folder was claimed


def test_init_from_inside_out_is_refused_before_anything_is_removed(tmp_path):
    run = senet.save_model(create_model("resnet8", num_classes=3, in_chans=1), tmp_path / "run")
    weights = (run / "model.safetensors").read_bytes()
    for source in (run, run / "model.safetensors"):
        with pytest.raises(ConfigError, match="write over the weights it starts from"):
            resolve_config({"model": "resnet8", "data": "synthetic", "init_from": str(source), "out": str(run),
                            "overwrite": True})
    assert (run / "model.safetensors").read_bytes() == weights


@pytest.mark.parametrize("data, expected", [("fashion-mnist", 0.1), ("synthetic", None)])
def test_the_held_out_part_is_recorded_as_a_number(data, expected):
    config = resolve_config({"model": "resnet8", "data": data})
    assert config.val_split == expected  # None only where the dataset validates on its own images


def test_a_recipe_files_val_split_gives_way_to_a_data_flag_without_a_hold_out(tmp_path):
    from senet.cli import build_parser
    from senet.cli.train import recipe_from_args

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: resnet8\ndata: fashion-mnist\nval_split: 0.2\n")
    parse = build_parser().parse_args
    assert recipe_from_args(parse(["train", "--config", str(recipe)]))[0]["val_split"] == 0.2
    assert "val_split" not in recipe_from_args(parse(["train", "--config", str(recipe), "--data", "synthetic"]))[0]
    given = recipe_from_args(parse(["train", "--config", str(recipe), "--data", "synthetic", "--val-split", "0.3"]))
    assert given[0]["val_split"] == 0.3  # given on the command line: kept (and refused later for synthetic)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a CUDA GPU")
def test_excite_on_a_missing_gpu_is_a_user_error(tmp_path, capsys):
    model = senet.save_model(create_model("notebook_se_residual"), tmp_path / "m")
    assert main(["excite", str(model), "--out", str(tmp_path / "x"), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in _one_line_error(capsys)


def test_adamw_takes_momentum_as_its_first_beta():
    model = create_model("resnet8", num_classes=3)
    for momentum in (0.9, 0.5):
        config = make_config({"model": "resnet8", "data": "synthetic", "optimizer": "adamw", "momentum": momentum})
        assert make_optimizer(model, config).defaults["betas"] == (momentum, 0.999)

