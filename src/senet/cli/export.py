"""``senet export DIR --format onnx|torchscript --out FILE``: a saved model -> a deployment file, checked."""

from __future__ import annotations

import argparse

from senet import checks
from senet.cli._common import input_size_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a saved model to ONNX or TorchScript and check it against PyTorch",
        description="Export a model saved by senet (a folder, or a .safetensors file naming its architecture). "
                    "Global pooling is exported as a plain mean (ONNX ReduceMean). The written file is run on a "
                    "random input and compared with PyTorch (ONNX: with onnxruntime, when installed).",
    )
    p.add_argument("model", metavar="DIR", type=checks.Path("read"), help="saved model: folder with model.safetensors + config.json, or file")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="output format (default onnx)")
    p.add_argument("--out", required=True, type=checks.Path("write-file"), help="output file (.onnx, or .pt for TorchScript)")
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free (checked at 1 and 3)")
    p.add_argument("--opset", type=checks.Int(7, 99), default=None, help="ONNX opset version (default 18; --format onnx only)")
    input_size_arg(p, "example input size without batch (default: the size the run trained at, else the model's own)")
    p.add_argument("--atol", type=checks.Float(0, 1, lo_open=True), default=1e-4, help="largest |difference| to PyTorch accepted (default 1e-4)")
    p.add_argument("--no-verify", action="store_true", help="skip running the exported file")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold each BatchNorm into the convolution before it (faster inference; the check compares "
                        "with the unfolded model)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from senet.cli._common import refuse_overwriting_inputs
    from senet.interop.export import export_model
    from senet.io import CONFIG_FILE, WEIGHTS_FILE

    model = Path(args.model)
    reads = [model / WEIGHTS_FILE, model / CONFIG_FILE] if model.is_dir() else [model, model.with_name(CONFIG_FILE)]
    refuse_overwriting_inputs([args.out], reads)

    result = export_model(
        args.model, args.out, format=args.format, input_size=args.input_size, dynamic_batch=args.dynamic_batch,
        opset=args.opset, verify=not args.no_verify, atol=args.atol, fold_bn=args.fold_bn,
    )
    print(result)
    return 0
