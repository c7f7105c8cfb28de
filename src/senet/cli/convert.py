"""``senet convert SRC [--from timm|caffe-port|torchvision] [--model NAME] --out PATH``: a peer's weights -> a senet
model file. The layout is read from the keys; ``--from`` only confirms it."""

from __future__ import annotations

import argparse

from senet import checks


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert timm, Caffe-port (pretrainedmodels, timm legacy_se*) or torchvision weights into a "
                        "senet model",
        description="Rename a peer's state dict onto a senet model with the matching stride placement and pooling, "
                    "load it strictly (missing/unexpected keys and shape mismatches are listed) and save it so "
                    "senet.load_model rebuilds it. .pth/.bin files are read with torch.load(weights_only=True): "
                    "pickles that would run code are refused.",
    )
    p.add_argument("src", type=checks.Path("read-file"),
                   help="weights file: .safetensors, or .pth/.pt/.bin holding a state dict")
    p.add_argument("--from", dest="source", default=None, choices=("timm", "caffe-port", "torchvision"),
                   help="layout of SRC: timm (seresnet*, seresnext*), caffe-port (layer0.*, se_module, last_linear) "
                        "or torchvision (plain resnet*); default: read from the keys. A file whose keys show "
                        "another layout is refused")
    p.add_argument("--model", default=None,
                   help="target model, ours (se_resnet50) or the peer's name (seresnet50, legacy_seresnet50); "
                        "default: inferred from the tensor names and shapes")
    p.add_argument("--out", required=True, type=checks.Path("write"),
                   help="FILE.safetensors (one file, architecture in its metadata) or a folder "
                        "(model.safetensors + config.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from senet.cli._common import refuse_overwriting_inputs
    from senet.interop.convert import convert_weights, save_converted
    from senet.io import CONFIG_FILE, WEIGHTS_FILE

    out = Path(args.out)
    refuse_overwriting_inputs([out] if out.suffix == ".safetensors" else [out / WEIGHTS_FILE, out / CONFIG_FILE],
                              [args.src])

    model, report = convert_weights(args.src, source=args.source, model=args.model)
    path = save_converted(model, args.out, report)
    print(report)
    print(f"wrote {path}  (load it with senet.load_model({str(path)!r}))")
    return 0
