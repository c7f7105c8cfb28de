"""ONNX and TorchScript export: the files reproduce PyTorch, pooling is a plain mean, bad exports name the op."""

import onnxruntime  # noqa: F401  (the onnx extra: missing is an error, not a quiet skip)
import pytest
import torch
from torch import nn

from senet.cli import main
from senet.errors import ConfigError, SenetError
from senet.interop.export import (
    GlobalMean,
    export_model,
    onnx_op_types,
    replace_adaptive_pooling,
    run_exported,
    unsupported_op_name,
)
from senet.io import load_model, save_model
from senet.models import create_model

SIZE = (3, 32, 32)
#: A plain model, an SE model and an SE variant (ECA), as the issue asks.
MODELS = [("resnet18", {}), ("se_resnet18", {}), ("se_resnet18", {"attn_layer": "eca"})]


def _saved(tmp_path, name, kwargs):
    model = create_model(name, **kwargs).eval()
    _randomise_bn(model)
    return save_model(model, tmp_path / "model"), model


def _randomise_bn(model: nn.Module) -> None:
    """Non-trivial running statistics, so a wrongly folded BatchNorm would show."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)


@pytest.mark.parametrize("name,kwargs", MODELS, ids=["resnet18", "se_resnet18", "se_resnet18-eca"])
def test_onnx_dynamic_batch_matches_pytorch(tmp_path, capsys, name, kwargs):
    folder, model = _saved(tmp_path, name, kwargs)
    out = tmp_path / "model.onnx"
    args = ["--format", "onnx", "--out", str(out), "--dynamic-batch", "--input-size", *map(str, SIZE)]
    if name == "se_resnet18" and not kwargs:  # one of them through the command line
        assert main(["export", str(folder), *args]) == 0
        assert "dynamic batch" in capsys.readouterr().out
    else:
        result = export_model(folder, out, format="onnx", input_size=SIZE, dynamic_batch=True)
        assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    import onnx

    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # a symbolic batch dimension
    for batch in (1, 3):
        x = torch.randn(batch, *SIZE)
        with torch.no_grad():
            expected = model(x)
        got = run_exported(out, x, "onnx")
        assert got.shape == (batch, 1000)
        assert torch.allclose(got, expected, atol=1e-4)
    ops = onnx_op_types(out)
    assert "ReduceMean" in ops  # global pooling (and SE's squeeze) as a plain mean
    assert not ops & {"GlobalAveragePool", "AveragePool", "AdaptiveAvgPool2d"}


@pytest.mark.parametrize("opset", [13, 18])  # 13: PyTorch's older exporter; 18: the torch.export-based one
def test_opset_is_written_and_checked(tmp_path, opset):
    model = create_model("notebook_se_residual").eval()
    out = tmp_path / "nb.onnx"
    result = export_model(model, out, opset=opset, dynamic_batch=True)  # checked at batch 1 and 3
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    import onnx

    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")] == [opset]
    assert "ReduceMean" in onnx_op_types(out) and "GlobalAveragePool" not in onnx_op_types(out)


def test_torchscript_round_trip(tmp_path):
    folder, model = _saved(tmp_path, "se_resnet18", {})
    out = tmp_path / "model.pt"
    code = main(["export", str(folder), "--format", "torchscript", "--out", str(out), "--input-size", *map(str, SIZE)])
    assert code == 0
    x = torch.randn(2, *SIZE)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(run_exported(out, x, "torchscript"), expected, atol=1e-5)


def test_fold_bn_export_has_no_batchnorm_and_matches_the_unfolded_model(tmp_path):
    folder, model = _saved(tmp_path, "se_resnet18", {})  # random BN statistics: a wrong fold would show
    out = tmp_path / "folded.onnx"
    result = export_model(model, out, fold_bn=True)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert "BatchNormalization" not in onnx_op_types(out)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the caller's model is not folded
    assert result.bn_folded == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    code = main(["export", str(folder), "--format", "torchscript", "--fold-bn", "--out", str(tmp_path / "f.pt"),
                 "--input-size", *map(str, SIZE)])
    assert code == 0
    scripted = torch.jit.load(str(tmp_path / "f.pt"))
    assert "batch_norm" not in str(scripted.inlined_graph)
    plain = tmp_path / "plain.pt"
    export_model(model, plain, format="torchscript", input_size=SIZE)
    assert "batch_norm" in str(torch.jit.load(str(plain)).inlined_graph)  # the check above can fail


class _WithAdaptivePool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


def test_adaptive_pooling_becomes_a_plain_mean(tmp_path):
    model = _WithAdaptivePool().eval()
    twin = _WithAdaptivePool().eval()
    twin.load_state_dict(model.state_dict())
    assert replace_adaptive_pooling(twin) == 1 and isinstance(twin.pool, GlobalMean)
    x = torch.randn(2, 3, 9, 11)
    assert torch.allclose(twin(x), model(x), atol=1e-6)
    out = tmp_path / "pool.onnx"
    export_model(model, out, input_size=(3, 9, 11), dynamic_batch=True)
    ops = onnx_op_types(out)
    assert "GlobalAveragePool" not in ops and "ReduceMean" in ops
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)  # the caller's model is left as it was


class _Polygamma(nn.Module):
    def forward(self, x):
        return torch.polygamma(2, x.abs() + 1)


def test_unsupported_op_is_named(tmp_path):
    with pytest.raises(SenetError, match="polygamma"):
        export_model(_Polygamma(), tmp_path / "bad.onnx", input_size=(1, 4, 4))
    assert not (tmp_path / "bad.onnx").exists()


def test_op_name_is_read_from_the_exception_chain():
    try:
        try:
            raise RuntimeError("Exporting the operator 'aten::fancy_op' to ONNX opset version 17 is not supported")
        except RuntimeError as inner:
            raise ValueError("conversion failed") from inner
    except ValueError as exc:
        assert unsupported_op_name(exc) == "aten::fancy_op"


def test_bad_options_are_refused(tmp_path):
    model = create_model("notebook_simple")
    with pytest.raises(ConfigError, match="format"):
        export_model(model, tmp_path / "x", format="tflite")
    with pytest.raises(SenetError, match="--input-size"):
        export_model(model, tmp_path / "x.onnx", input_size=(3, 28, 28))
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x.onnx")]) == 2


def test_exported_saved_model_loads_back_unchanged(tmp_path):
    folder, model = _saved(tmp_path, "notebook_simple", {})
    export_model(folder, tmp_path / "nb.pt", format="torchscript")
    again = load_model(folder)
    x = torch.randn(1, 1, 28, 28)
    assert torch.equal(again(x), model(x))


def test_a_file_that_disagrees_with_pytorch_is_removed(tmp_path, monkeypatch):
    from senet.interop import export

    monkeypatch.setattr(export, "run_exported", lambda path, x, fmt: torch.zeros(x.shape[0], 10))
    out = tmp_path / "nb.pt"
    with pytest.raises(SenetError, match="disagrees with PyTorch"):
        export_model(create_model("notebook_simple"), out, format="torchscript")
    assert not out.exists()


def test_opset_with_torchscript_is_refused(tmp_path, capsys):
    model = create_model("notebook_simple")
    with pytest.raises(ConfigError, match="--opset applies to --format onnx only"):
        export_model(model, tmp_path / "x.pt", format="torchscript", opset=17)
    folder = save_model(model, tmp_path / "model")
    rc = main(["export", str(folder), "--format", "torchscript", "--opset", "17", "--out", str(tmp_path / "y.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "--opset applies to --format onnx only" in err and not (tmp_path / "y.pt").exists()


@pytest.mark.parametrize("model_entry", [{}, {"name": "notebook_simple", "kwargs": [1]}])
def test_export_of_a_foreign_config_exits_2_with_one_line(tmp_path, capsys, model_entry):
    import json

    folder = save_model(create_model("notebook_simple"), tmp_path / "model")
    (folder / "config.json").write_text(json.dumps({"format": "senet", "model": model_entry}))
    rc = main(["export", str(folder), "--out", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a senet config" in err and str(folder / "config.json") in err
    assert len(err.strip().splitlines()) == 1
