"""Bad and hostile weight files are refused with a clear message, and nothing in them ever runs.

Covers ``senet.io.read_state_dict``, ``senet.load_model``, ``senet.interop.convert_weights`` and ``senet convert``.
"""

import pickle
import struct

import pytest
import torch

import senet
from senet.cli import main
from senet.errors import SenetError
from senet.interop import convert_weights
from senet.io import read_state_dict


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if, and only if, the pickle is executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "PWNED"


@pytest.fixture
def evil_files(tmp_path, marker):
    """The same code-running payload as a raw pickle and inside a torch.save zip next to real tensors."""
    raw = tmp_path / "raw_evil.pth"
    raw.write_bytes(pickle.dumps({"conv1.weight": _Payload(marker)}))
    zipped = tmp_path / "zip_evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "hook": _Payload(marker)}, zipped)
    return [raw, zipped]


def test_the_payload_is_live(tmp_path):
    """Control: a plain unpickler does run it, so the tests below would notice an unsafe load."""
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control)))
    assert control.exists()


def test_code_running_pickles_are_refused_everywhere(evil_files, marker, tmp_path, capsys):
    for path in evil_files:
        with pytest.raises(SenetError, match="refusing to load .*not a plain tensor file"):
            read_state_dict(path)
        with pytest.raises(SenetError, match="refusing to load"):
            convert_weights(path, "timm", model="se_resnet18")
        assert main(["convert", str(path), "--from", "caffe-port", "--out", str(tmp_path / "o.safetensors")]) == 2
        assert "refusing to load" in capsys.readouterr().err
    # a saved-model folder whose weights file is really the pickle
    folder = senet.save_model(senet.create_model("notebook_simple"), tmp_path / "saved")
    (folder / "model.safetensors").write_bytes(evil_files[0].read_bytes())
    with pytest.raises(SenetError, match="not a readable safetensors file"):
        senet.load_model(folder)
    with pytest.raises(SenetError, match=r"GLOBAL (io|builtins)\.open\); nothing in it was run"):
        read_state_dict(evil_files[1])  # the message names what the pickle asked for
    assert not marker.exists()
    assert not (tmp_path / "o.safetensors").exists()


def _saved_weights(tmp_path):
    folder = senet.save_model(senet.create_model("notebook_simple"), tmp_path / "saved")
    return folder, folder / "model.safetensors"


def test_truncated_safetensors_is_refused(tmp_path):
    _, weights = _saved_weights(tmp_path)
    data = weights.read_bytes()
    loose = tmp_path / "loose.safetensors"  # outside a model folder: convert reads it as a peer's file
    for cut in (4, 40, len(data) // 2, len(data) - 1):
        weights.write_bytes(data[:cut])
        loose.write_bytes(data[:cut])
        for load, path in ((read_state_dict, weights), (senet.load_model, weights),
                           (lambda p: convert_weights(p, "timm"), loose)):
            with pytest.raises(SenetError, match="not a readable safetensors file"):
                load(path)
    assert main(["convert", str(loose), "--from", "timm", "--out", str(tmp_path / "o")]) == 2


def test_truncated_torch_zip_is_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(senet.create_model("notebook_simple").state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SenetError, match="refusing to load"):
        convert_weights(path, "timm")


def test_safetensors_header_claiming_absurd_size_is_refused(tmp_path):
    path = tmp_path / "bomb.safetensors"
    path.write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(SenetError, match="not a readable safetensors file"):
        read_state_dict(path)


@pytest.mark.parametrize("name,content", [
    ("notes.pth", b"these are not weights\n"),
    ("random.bin", bytes(range(256)) * 4),
    ("garbage.safetensors", b"\x00" * 64),
    ("json.safetensors", b'{"conv1.weight": [1, 2, 3]}'),
])
def test_files_that_are_not_state_dicts_are_refused(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SenetError):
        read_state_dict(path)
    with pytest.raises(SenetError):
        convert_weights(path, "caffe-port")


@pytest.mark.parametrize("obj", [[torch.zeros(1)], {"epoch": 3, "lr": 0.1}, {}, {"a": torch.zeros(1), "b": 2}])
def test_pickled_objects_that_are_not_state_dicts_are_refused(tmp_path, obj):
    path = tmp_path / "thing.pth"
    torch.save(obj, path)
    with pytest.raises(SenetError, match="does not hold a state dict"):
        read_state_dict(path)
    with pytest.raises(SenetError, match="does not hold a state dict"):
        convert_weights(path, "timm")


def test_in_memory_inputs_that_are_not_state_dicts_are_refused():
    with pytest.raises(SenetError, match="not tensors"):
        convert_weights({"conv1.weight": [[1.0]]}, "timm")
    with pytest.raises(SenetError, match="empty"):
        convert_weights({}, "timm")
    with pytest.raises(ValueError, match="expected a state dict or a file path"):
        convert_weights(42, "timm")
