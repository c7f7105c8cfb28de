"""``senet complexity NAME [NAME ...]``: parameters and multiply-adds of models side by side."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    from senet.cli._common import add_model_args

    p = sub.add_parser("complexity", help="parameters and multiply-adds; --paper compares with the paper's tables")
    p.add_argument("names", nargs="*", help="registered model names")
    add_model_args(p)
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"))
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senet.cli._common import parse_model_args
    from senet.complexity import MACS_CONVENTION, model_complexity
    from senet.errors import ConfigError
    from senet.models import create_model, default_input_size

    if not args.names:
        raise ConfigError("name at least one model, e.g. `senet complexity resnet50 se_resnet50`")
    kwargs = parse_model_args(args.model_arg)
    rows = []
    for name in args.names:
        import torch

        with torch.device("meta"):
            model = create_model(name, **kwargs)
        size = tuple(args.input_size) if args.input_size else default_input_size(model)
        rows.append({"model": name, "input_size": list(size), **model_complexity(model, size)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<28}{'input':>14}{'params (M)':>12}{'SE params (M)':>15}{'GMACs':>9}")
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        print(f"{r['model']:<28}{size:>14}{r['params'] / 1e6:>12.3f}{r['se_params'] / 1e6:>15.3f}{r['macs'] / 1e9:>9.3f}")
    print(f"GMACs: {MACS_CONVENTION}")
    return 0
