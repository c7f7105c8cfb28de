"""Saving and loading by value: extra keys reach config.json, wrapped .pt state dicts unwrap to the same tensors,
and a file whose keys do not fit the model is refused naming them (safe loading: torch.load(weights_only=True))."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

import senet
from senet.errors import SenetError
from senet.io import read_config, read_state_dict


def _saved(tmp_path, **extra):
    model = senet.create_model("notebook_simple", num_classes=3, image_size=8)
    senet.save_model(model, tmp_path / "m", extra=extra or None)
    return model, tmp_path / "m"


def test_extra_keys_are_written_beside_the_model_entry(tmp_path):
    _, folder = _saved(tmp_path, dataset={"name": "synthetic"}, class_names=["a", "b", "c"], epoch=3)
    doc = json.loads((folder / "config.json").read_text())
    assert doc["dataset"] == {"name": "synthetic"} and doc["class_names"] == ["a", "b", "c"] and doc["epoch"] == 3
    assert read_config(folder)["class_names"] == ["a", "b", "c"]
    assert senet.load_model(folder).senet_saved_config["epoch"] == 3


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model", "model_state_dict"])
def test_pt_files_unwrap_the_usual_checkpoint_keys(tmp_path, wrapper):
    model, _ = _saved(tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 7}, tmp_path / "w.pt")
    loaded = read_state_dict(tmp_path / "w.pt")
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("change, words", [("drop", "missing (1): fc.bias"), ("add", "unexpected (1): extra.w")])
def test_weights_that_do_not_fit_are_refused_naming_the_keys(tmp_path, change, words):
    _, folder = _saved(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    if change == "drop":
        del state["fc.bias"]
    else:
        state["extra.w"] = torch.zeros(2)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(SenetError, match=words.replace("(", r"\(").replace(")", r"\)")):
        senet.load_model(folder)


def test_a_pt_file_whose_pickle_calls_a_function_is_refused_unrun(tmp_path):
    """weights_only=True: a pickle that asks to call ``os.mkdir`` is refused, and the call never happens."""
    marker = tmp_path / "ran"
    torch.save({"w": torch.zeros(1), "payload": _CallsMkdir(str(marker))}, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(SenetError, match="refusing to load .*nothing in it was run"):
        read_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()


class _CallsMkdir:
    """Pickles as a call of ``os.mkdir(path)``: a stand-in for any code a hostile file could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)
