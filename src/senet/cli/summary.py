"""``senet summary NAME``: a Keras-style layer table (torchinfo) and the totals, or ``--json`` totals only."""

from __future__ import annotations

import argparse
import json

from senet import checks
from senet.cli._common import ModelName, add_model_args, input_size_arg, parse_model_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="layer table, parameters and multiply-adds of a model")
    p.add_argument("name", type=ModelName(), help="registered model name (see senet models)")
    add_model_args(p)
    input_size_arg(p, "input size without batch (default: the model's own, else 3 224 224)")
    p.add_argument("--depth", type=checks.Int(0, 50), default=3, help="nesting depth of the layer table (default 3)")
    p.add_argument("--json", action="store_true", help='print only {"params", "se_params", "macs"}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senet.complexity import MACS_CONVENTION, model_complexity
    from senet.models import create_model, default_input_size

    kwargs = parse_model_args(args.model_arg)
    model = create_model(args.name, **kwargs)
    input_size = tuple(args.input_size) if args.input_size else default_input_size(model)
    stats = model_complexity(model, input_size)
    if args.json:
        print(json.dumps(stats))
        return 0
    from senet._extras import require

    torchinfo = require("torchinfo", "train", purpose="the layer table")

    table = torchinfo.summary(
        model, input_size=(1, *input_size), depth=args.depth, verbose=0, device="cpu",
        col_names=("output_size", "num_params"), row_settings=("var_names",),
    )
    print(table)
    print(f"Input size: {input_size}")
    print(f"Parameters: {stats['params']:,} (in SE/attention blocks: {stats['se_params']:,})")
    print(f"Multiply-adds: {stats['macs']:,} ({stats['macs'] / 1e9:.3f} G; {MACS_CONVENTION})")
    return 0
