"""Export a model to ONNX or TorchScript and check the exported file against PyTorch.

* **ONNX** goes through ``torch.onnx.export(dynamo=True)`` (the ``torch.export`` based exporter; opset 18 and
  newer) or, for an older ``opset``, PyTorch's TorchScript-based exporter, and is written as one self-contained
  ``.onnx`` file whose opset is checked to be the one asked for. Global average pooling becomes a plain mean (ONNX ``ReduceMean`` over H, W):
  SE's squeeze F_sq already is one, and any ``nn.AdaptiveAvgPool2d(1)`` head is swapped for the same mean before
  export, so no runtime meets an adaptive pooling op and a dynamic batch (or image size) stays valid.
* **TorchScript** goes through ``torch.jit.trace`` (PyTorch marks TorchScript as deprecated; it is still what
  many C++ and mobile deployments load). The trace is saved, reloaded and compared.

After writing, the file is run on a random input (onnxruntime for ONNX, when installed) and its outputs are
compared with the PyTorch model's; a difference above ``atol`` raises :class:`~senet.errors.SenetError`.
An operator the ONNX exporter cannot translate ends in a ``SenetError`` that names the operator.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from senet._extras import require
from senet.errors import ConfigError, SenetError

__all__ = ["FORMATS", "ExportResult", "GlobalMean", "export_model", "onnx_op_types", "replace_adaptive_pooling",
           "run_exported", "unsupported_op_name"]

FORMATS = ("onnx", "torchscript")
#: Opset used when none is asked for; from this one on the torch.export-based exporter is used.
DEFAULT_OPSET = MIN_DYNAMO_OPSET = 18


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and how closely the file reproduces PyTorch (None: not checked)."""

    path: Path
    format: str
    input_size: tuple[int, int, int]
    dynamic_batch: bool
    max_abs_diff: float | None
    bn_folded: int | None = None

    def __str__(self) -> str:
        check = "not checked" if self.max_abs_diff is None else f"max |diff| vs PyTorch {self.max_abs_diff:.2e}"
        batch = "dynamic batch" if self.dynamic_batch else "batch 1"
        folded = "" if self.bn_folded is None else f", {self.bn_folded} BatchNorms folded"
        return f"wrote {self.path} ({self.format}, input {self.input_size}, {batch}{folded}; {check})"


class GlobalMean(nn.Module):
    """Global average pooling as ``x.mean((2, 3), keepdim=True)``: the same numbers as ``AdaptiveAvgPool2d(1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def _is_global_pool(module: nn.Module) -> bool:
    return isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1), [1, 1])


def replace_adaptive_pooling(model: nn.Module) -> int:
    """Swap every ``AdaptiveAvgPool2d(1)`` in ``model`` (in place) for :class:`GlobalMean`; return how many."""
    targets = [name for name, m in model.named_modules() if name and _is_global_pool(m)]
    for name in targets:
        model.set_submodule(name, GlobalMean())
    return len(targets)


def _prepare(model_or_path: nn.Module | str | Path) -> nn.Module:
    if isinstance(model_or_path, nn.Module):
        model = copy.deepcopy(model_or_path)
    else:
        from senet.io import load_model

        model = load_model(model_or_path)
    model = model.to("cpu").float().eval().requires_grad_(False)  # inference graphs: no autograd-only paths
    replace_adaptive_pooling(model)
    return model


def trained_input_size(model: nn.Module) -> tuple[int, int, int] | None:
    """(C, H, W) of the images the run that saved ``model`` trained on (its ``config.json`` dataset entry), or
    None for a model that carries no such record."""
    dataset = (getattr(model, "senet_saved_config", None) or {}).get("dataset")
    if not isinstance(dataset, dict) or "in_chans" not in dataset or "image_size" not in dataset:
        return None
    size = dataset["image_size"]
    height, width = (size, size) if isinstance(size, int) else size
    return int(dataset["in_chans"]), int(height), int(width)


def _input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, int, int]:
    from senet.models import default_input_size

    if input_size is None:
        input_size = trained_input_size(model) or default_input_size(model)
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or min(size) < 1:
        raise ConfigError(f"input size must be three positive integers C H W, got {tuple(input_size or ())}")
    return size


# Patterns that carry an operator name in the exporters' messages, most specific first.
_OP_PATTERNS = (
    r"No ONNX function found for <OpOverload\(op='([^']+)'",
    r"Exporting the operator '?([\w:.]+)'? to ONNX",
    r"target=torch\.ops\.([\w.]+?)(?:\.default)?\]",
    r"\b((?:aten|prims|torchvision)(?:::|\.)\w+)",
)


def unsupported_op_name(exc: BaseException) -> str | None:
    """The operator an exporter error complains about (``aten.polygamma``), searching the exception chain."""
    texts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    text = "\n".join(texts)
    for pattern in _OP_PATTERNS:
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return None


def _atomic_target(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def _write_onnx(model: nn.Module, example: torch.Tensor, target: Path, dynamic_batch: bool, opset: int) -> None:
    """torch.export-based exporter for opset >= 18; PyTorch's older TorchScript-based one writes older opsets."""
    common = {"input_names": ["input"], "output_names": ["output"], "verbose": False, "opset_version": opset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the older exporter's deprecation notice, tracer warnings
        if opset >= MIN_DYNAMO_OPSET:
            dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
            program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=dynamic_shapes,
                                        report=False, **common)
            program.save(str(target), external_data=False)
        else:
            axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(model, (example,), str(target), dynamo=False, dynamic_axes=axes, **common)


def _export_onnx(model: nn.Module, example: torch.Tensor, out: Path, dynamic_batch: bool, opset: int) -> None:
    require("onnx", "onnx", purpose="ONNX export")
    if opset >= MIN_DYNAMO_OPSET:
        require("onnxscript", "onnx", purpose=f"ONNX export at opset {opset}")
    tmp = _atomic_target(out)
    try:
        try:
            _write_onnx(model, example, tmp, dynamic_batch, opset)
        except Exception as exc:  # the exporters raise their own error classes; keep the operator name for people
            op = unsupported_op_name(exc)
            detail = f"operator {op} has no ONNX translation" if op else str(exc).strip().splitlines()[0]
            raise SenetError(f"cannot export to ONNX (opset {opset}): {detail}; "
                             f"try another --opset, --format torchscript, or replace that operation") from exc
        written = _onnx_opset(tmp)
        if written != opset:
            raise SenetError(f"the ONNX exporter wrote opset {written}, not the {opset} asked for; "
                             f"choose --opset {MIN_DYNAMO_OPSET} or newer")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _onnx_opset(path: Path) -> int | None:
    onnx = require("onnx", "onnx", purpose="ONNX export")

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _export_torchscript(model: nn.Module, example: torch.Tensor, out: Path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings for shape checks, the deprecation notice
            traced = torch.jit.trace(model, example, check_trace=False)
    except Exception as exc:
        raise SenetError(f"cannot trace the model to TorchScript: {str(exc).strip().splitlines()[0]}") from exc
    tmp = _atomic_target(out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(traced, str(tmp))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def run_exported(path: str | Path, x: torch.Tensor, format: str) -> torch.Tensor:
    """Run an exported file on ``x`` (onnxruntime on CPU for ONNX) and return the first output."""
    if format == "onnx":
        ort = require("onnxruntime", "onnx", purpose="running an ONNX file")

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(x)


def onnx_op_types(path: str | Path) -> set[str]:
    """The operator types in an ONNX file's main graph (``{"Conv", "ReduceMean", ...}``)."""
    onnx = require("onnx", "onnx", purpose="reading an ONNX file")

    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def _verify(model: nn.Module, path: Path, format: str, size: tuple[int, int, int], batches: Sequence[int],
            atol: float) -> float | None:
    if format == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
    worst = 0.0
    for batch in batches:
        x = torch.randn(batch, *size)
        with torch.no_grad():
            expected = model(x)
        got = run_exported(path, x, format)
        if got.shape != expected.shape:
            raise SenetError(f"exported {format} output has shape {tuple(got.shape)}, PyTorch gives "
                             f"{tuple(expected.shape)} (batch {batch})")
        worst = max(worst, (got.float() - expected.float()).abs().max().item())
    if not worst <= atol:
        raise SenetError(f"exported {format} file disagrees with PyTorch: max |diff| {worst:.3g} > {atol:g}")
    return worst


def export_model(
    model: nn.Module | str | Path,
    out: str | Path,
    *,
    format: str = "onnx",
    input_size: Sequence[int] | None = None,
    dynamic_batch: bool = False,
    opset: int | None = None,
    verify: bool = True,
    atol: float = 1e-4,
    fold_bn: bool = False,
) -> ExportResult:
    """Export ``model`` (a module, or a saved-model folder/file for :func:`senet.io.load_model`) to ``out``.

    Args:
        format: ``"onnx"`` or ``"torchscript"``.
        input_size: (C, H, W) of the example input; default the size the run that saved the model trained at
            (its ``config.json``), else the model's own (``default_input_size``).
        dynamic_batch: ONNX: leave the batch dimension symbolic. Either format is then checked at two batch sizes.
        opset: ONNX opset (default 18); giving one with another ``format`` raises ConfigError.
        verify: run the written file and compare with PyTorch within ``atol`` (ONNX needs onnxruntime).
        fold_bn: export with every BatchNorm that follows a convolution folded into it
            (:func:`senet.fold_batchnorm`); verification still compares with the unfolded model.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if opset is not None and format != "onnx":
        raise ConfigError(f"--opset applies to --format onnx only (got --format {format} --opset {opset})")
    if opset is not None and (not isinstance(opset, int) or opset < 7):
        raise ConfigError(f"ONNX opset must be an integer >= 7, got {opset!r}")
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"--out must be a file path, {out} is a folder")
    net = _prepare(model)
    size = _input_size(net, input_size)
    example = torch.randn(2 if dynamic_batch else 1, *size)
    with torch.no_grad():
        try:
            net(example)
        except Exception as exc:
            raise SenetError(f"the model does not run on input (N, {', '.join(map(str, size))}): "
                             f"{str(exc).strip().splitlines()[0]}; pass --input-size C H W") from exc
    exported, folded = net, None
    if fold_bn:
        from senet.models.fold import fold_batchnorm

        exported, folded = fold_batchnorm(net)
    if format == "onnx":
        _export_onnx(exported, example, out, dynamic_batch, opset or DEFAULT_OPSET)
    else:
        _export_torchscript(exported, example, out)
    try:
        diff = _verify(net, out, format, size, (1, 3) if dynamic_batch else (1,), atol) if verify else None
    except SenetError as exc:
        out.unlink(missing_ok=True)  # never leave a file behind that was shown to be wrong
        raise SenetError(f"{exc}; {out} was removed") from exc
    return ExportResult(out, format, size, dynamic_batch, diff, folded)
