"""Public API and CLI paths by value: the registry round trip, ``save_model(config=)``, ``load_model(map_location=)``,
the scSE combine modes and Gather-Excite extents computed by hand, and the CLI flags that change what runs."""

from __future__ import annotations

import json

import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import senet
from senet.cli import main
from senet.layers import ChannelSpatialSE, GatherExcite
from senet.models import registry

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


# ------------------------------------------------------------------------------------------------ registry and io
class TwoLayer(nn.Module):
    def __init__(self, width: int = 4, num_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Conv2d(1, width, 3, padding=1)
        self.se = senet.SqueezeExcite(width, 2)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.se(F.relu(self.body(x))).mean((2, 3)))


@pytest.fixture
def private_registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_register_model_round_trip_through_the_files(private_registry, tmp_path):
    @senet.register_model
    def user_two_layer(width: int = 4, num_classes: int = 3) -> TwoLayer:
        return TwoLayer(width, num_classes)

    assert "user_two_layer" in senet.list_models("user_*")
    model = senet.create_model("user_two_layer", width=6).eval()
    assert model.senet_config == {"name": "user_two_layer", "kwargs": {"width": 6}}
    assert len(senet.named_se_blocks(model)) == 1
    senet.save_model(model, tmp_path / "m")
    loaded = senet.load_model(tmp_path / "m")
    assert isinstance(loaded, TwoLayer) and loaded.body.out_channels == 6
    x = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="already registered"):
        senet.register_model(user_two_layer)


def test_save_model_config_overrides_or_supplies_the_build_config(tmp_path):
    residual = senet.create_model("notebook_se_residual").eval()
    x = torch.randn(2, 1, 28, 28)
    # the same tensors, declared as the non-residual model: loading must build *that* model
    senet.save_model(residual, tmp_path / "as_simple", config={"name": "notebook_simple", "kwargs": {}})
    doc = json.loads((tmp_path / "as_simple" / "config.json").read_text())
    assert doc["model"] == {"name": "notebook_simple", "kwargs": {}}
    simple = senet.load_model(tmp_path / "as_simple")
    assert simple.residual is False
    by_hand = senet.create_model("notebook_simple").eval()
    by_hand.load_state_dict(residual.state_dict())
    torch.testing.assert_close(simple(x), by_hand(x), rtol=0, atol=0)
    assert (simple(x) - residual(x)).abs().max() > 1e-4
    # a model without a build config needs one
    bare = TwoLayer()
    with pytest.raises(senet.SenetError, match="no build config"):
        senet.save_model(bare, tmp_path / "bare")


def test_load_model_map_location_places_every_tensor(tmp_path):
    senet.save_model(senet.create_model("notebook_simple"), tmp_path / "m")
    default = senet.load_model(tmp_path / "m")
    meta = senet.load_model(tmp_path / "m", map_location="meta")
    assert {t.device.type for t in default.state_dict().values()} == {"cpu"}
    assert {t.device.type for t in meta.state_dict().values()} == {"meta"}
    as_device = senet.load_model(tmp_path / "m", map_location=torch.device("meta"))
    assert {t.device.type for t in as_device.state_dict().values()} == {"meta"}
    assert not meta.training  # loaded for inference


# ------------------------------------------------------------------------------------------------ variants by value
def _cse(block, x):
    """Eq. 2-4: x * sigmoid(W2 relu(W1 mean(x) + b1) + b2)."""
    s = x.mean((2, 3))
    z = F.relu(s @ block.fc1.weight.flatten(1).T + block.fc1.bias)
    return x * torch.sigmoid(z @ block.fc2.weight.flatten(1).T + block.fc2.bias)[:, :, None, None]


def _sse(block, x):
    """Roy et al. (2018): q = sigmoid(sum_c w_c x_c + b) per position; out = x * q."""
    q = torch.einsum("nchw,c->nhw", x, block.conv.weight.flatten()) + block.conv.bias
    return x * torch.sigmoid(q)[:, None]


@pytest.mark.parametrize("combine", ["add", "max", "mul"])
@torch.no_grad()
def test_scse_combine_modes_by_value(combine):
    block = ChannelSpatialSE(8, 2, combine=combine)
    for p in block.parameters():
        p.normal_(0, 0.7)
    x = torch.randn(2, 8, 3, 4)
    c, s = _cse(block.cse, x), _sse(block.sse, x)
    want = {"add": c + s, "max": torch.maximum(c, s), "mul": c * s}[combine]
    torch.testing.assert_close(block(x), want, rtol=1e-5, atol=1e-6)
    others = [m for m in ("add", "max", "mul") if m != combine]
    for other in others:  # the three modes really differ on this input
        assert (want - {"add": c + s, "max": torch.maximum(c, s), "mul": c * s}[other]).abs().max() > 1e-3


@pytest.mark.parametrize("extent", [None, 1, 2, 3])
@torch.no_grad()
def test_gather_excite_extents_by_value(extent):
    """GE-theta-minus: each position is scaled by sigmoid(mean of its e x e cell); cells cut by the border average
    only the pixels inside; ``None`` is one global cell."""
    x = torch.randn(2, 3, 5, 5)
    want = torch.empty_like(x)
    for i in range(5):
        for j in range(5):
            if extent is None:
                cell = x
            else:
                r, c = (i // extent) * extent, (j // extent) * extent
                cell = x[:, :, r:r + extent, c:c + extent]
            want[:, :, i, j] = x[:, :, i, j] * torch.sigmoid(cell.mean((2, 3)))
    torch.testing.assert_close(GatherExcite(3, extent)(x), want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ CLI paths
def _eq5_se_params(r: int) -> tuple[int, int]:
    """(SE-ResNet-50 params, SE params) by Eq. 5 with FC biases, from ResNet-50's 25,557,032."""
    stages = ((3, 256), (4, 512), (6, 1024), (3, 2048))
    se = sum(n * (2 * c * (c // r) + c + c // r) for n, c in stages)
    return 25_557_032 + se, se


def test_complexity_table_with_model_args_and_input_size(capsys):
    assert main(["complexity", "se_resnet50", "-m", "reduction=8", "--input-size", "3", "160", "160"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("se_resnet50"))
    params, se = _eq5_se_params(8)
    assert row.split()[1:4] == ["3x160x160", f"{params / 1e6:.3f}", f"{se / 1e6:.3f}"]
    assert main(["complexity", "se_resnet50", "-m", "reduction=8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)[0]
    assert doc["params"] == params and doc["se_params"] == se and doc["input_size"] == [3, 224, 224]
    assert float(row.split()[4]) < doc["macs"] / 1e9 * 0.6  # 160^2 / 224^2 = 0.51 of the work


def test_summary_input_size_and_depth(capsys):
    assert main(["summary", "resnet8", "--input-size", "3", "20", "20", "--depth", "1"]) == 0
    shallow = capsys.readouterr().out
    assert "[1, 16, 20, 20]" in shallow and "Input size: (3, 20, 20)" in shallow
    assert "layer1" in shallow and "conv1" not in shallow.split("layer1")[1]  # depth 1: no unit internals
    assert main(["summary", "resnet8", "--input-size", "3", "20", "20", "--depth", "3"]) == 0
    deep = capsys.readouterr().out
    assert "(conv1)" in deep.split("(layer1)")[1] and len(deep.splitlines()) > len(shallow.splitlines()) + 10


@pytest.fixture(scope="module")
def saved_notebook(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    senet.save_model(senet.create_model("notebook_simple", num_classes=4, image_size=8), root / "m",
                     extra={"dataset": {"name": "synthetic:classes=4,size=8,train=8,val=40"}})
    return root / "m"


class _OffByOneThousandth:
    """An onnxruntime session whose outputs are 1e-3 off: what a subtly wrong export would give."""

    calls = 0

    def __init__(self, *args, **kwargs):
        self.session = REAL_SESSION(*args, **kwargs)

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, *args, **kwargs):
        type(self).calls += 1
        return [out + 1e-3 for out in self.session.run(*args, **kwargs)]


REAL_SESSION = onnxruntime.InferenceSession


def test_export_atol_and_no_verify(saved_notebook, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(onnxruntime, "InferenceSession", _OffByOneThousandth)
    out = tmp_path / "m.onnx"
    assert main(["export", str(saved_notebook), "--out", str(out)]) == 2  # default atol 1e-4 < 1e-3
    assert "disagrees" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(saved_notebook), "--out", str(out), "--atol", "2e-3"]) == 0
    assert "max |diff| vs PyTorch 1.0" in capsys.readouterr().out and out.is_file()
    _OffByOneThousandth.calls = 0
    out.unlink()
    assert main(["export", str(saved_notebook), "--out", str(out), "--no-verify"]) == 0
    assert "not checked" in capsys.readouterr().out and out.is_file() and _OffByOneThousandth.calls == 0


def test_evaluate_val_subset_counts_a_seeded_subset(saved_notebook, tmp_path, capsys):
    args = ["evaluate", str(saved_notebook), "--json", "--device", "cpu", "--val-subset", "17"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["count"] == 17 and round(first["top1"] * 17, 6) == round(first["top1"] * 17)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out) == {**first, "metrics_json": str(tmp_path / "b" / "metrics.json"),
                                                   "confusion_png": str(tmp_path / "b" / "confusion.png")}
    assert main(["evaluate", str(saved_notebook), "--json", "--device", "cpu", "--out", str(tmp_path / "c")]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 40


def test_excite_split_train_reads_the_training_images(saved_notebook, tmp_path, capsys):
    """8 training images (2 per class) against 40 validation ones: the report counts the split it read."""
    for split, images in (("train", 8), ("val", 40)):
        assert main(["excite", str(saved_notebook), "--split", split, "--per-class", "50", "--out",
                     str(tmp_path / split), "--device", "cpu", "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert f"{images} images of synthetic:classes=4,size=8,train=8,val=40/{split}" in out
