"""save_model / load_model round trips and refusals."""

import json

import pytest
import torch

import senet
import senet.io
from senet.io import read_state_dict


def test_round_trip_rebuilds_the_model_from_the_folder_alone(tmp_path):
    model = senet.create_model("notebook_se_residual", num_classes=7).eval()
    senet.save_model(model, tmp_path, extra={"dataset": "synthetic"})
    loaded = senet.load_model(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["model"] == {"name": "notebook_se_residual", "kwargs": {"num_classes": 7}} and doc["dataset"] == "synthetic"
    # the weights file alone names its architecture too
    (tmp_path / "config.json").unlink()
    assert torch.equal(senet.load_model(tmp_path / "model.safetensors")(x), model(x))


def test_no_temporary_files_are_left_behind(tmp_path):
    senet.save_model(senet.create_model("notebook_simple"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_model_without_config_needs_one(tmp_path):
    with pytest.raises(senet.SenetError, match="create_model"):
        senet.save_model(torch.nn.Linear(2, 2), tmp_path)


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    senet.save_model(senet.create_model("notebook_simple"), tmp_path)
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(senet.SenetError, match="not a senet config"):
        senet.load_model(tmp_path)
    (tmp_path / "config.json").unlink()
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(senet.SenetError, match="safetensors"):
        senet.load_model(tmp_path)
    with pytest.raises(FileNotFoundError):
        senet.load_model(tmp_path / "nope")


def test_shape_mismatch_lists_the_offending_keys(tmp_path):
    senet.save_model(senet.create_model("notebook_simple", num_classes=3), tmp_path)
    doc = json.loads((tmp_path / "config.json").read_text())
    doc["model"]["kwargs"]["num_classes"] = 10
    (tmp_path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(senet.SenetError, match=r"shape mismatch \(2\): fc.weight"):
        senet.load_model(tmp_path)


def test_pt_files_load_plain_state_dicts_only(tmp_path):
    model = senet.create_model("notebook_simple")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pth")
    assert set(read_state_dict(tmp_path / "w.pth")) == set(model.state_dict())
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(senet.SenetError, match="does not hold a state dict"):
        read_state_dict(tmp_path / "list.pth")


@pytest.mark.parametrize("model_entry", [{}, {"name": "notebook_simple", "kwargs": [1]}, {"name": 3},
                                         "notebook_simple", {"name": "notebook_simple", "kwargs": "x"}])
def test_malformed_model_entry_is_a_senet_error_naming_the_file(tmp_path, model_entry):
    senet.save_model(senet.create_model("notebook_simple"), tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "senet", "model": model_entry}))
    with pytest.raises(senet.SenetError, match="not a senet config") as info:
        senet.load_model(tmp_path)
    assert str(tmp_path / "config.json") in str(info.value)


@pytest.mark.parametrize("meta", ['{"name": "notebook_simple", "kwargs": [1]}', "[]", "{not json"])
def test_malformed_safetensors_metadata_is_a_senet_error(tmp_path, meta):
    from senet.io import atomic_save_safetensors

    model = senet.create_model("notebook_simple")
    atomic_save_safetensors(model.state_dict(), tmp_path / "w.safetensors", metadata={"senet_config": meta})
    with pytest.raises(senet.SenetError, match="w.safetensors"):
        senet.load_model(tmp_path / "w.safetensors")


def test_kwargs_may_be_left_out_of_the_model_entry(tmp_path):
    senet.save_model(senet.create_model("notebook_simple"), tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "senet", "model": {"name": "notebook_simple"}}))
    assert senet.io.read_config(tmp_path)["model"]["kwargs"] == {}
    assert isinstance(senet.load_model(tmp_path), torch.nn.Module)


def test_check_data_fits_model():
    from senet.io import check_data_fits_model

    entry = {"name": "se_resnet20", "kwargs": {"num_classes": 10, "in_chans": 1}}
    check_data_fits_model(entry, num_classes=10, in_chans=1)
    check_data_fits_model({"name": "se_resnet20"}, num_classes=20, in_chans=3)  # nothing recorded: nothing checked
    with pytest.raises(senet.SenetError, match="built for num_classes=10 but 'cifar100' has num_classes=100"):
        check_data_fits_model(entry, num_classes=100, in_chans=1, data_name="'cifar100'")
    with pytest.raises(senet.SenetError, match="in_chans=1 .* in_chans=3"):
        check_data_fits_model(entry, num_classes=10, in_chans=3)
