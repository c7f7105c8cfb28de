"""``senet compare --models A,B --data NAME``: train several models with one recipe and seeds; report and curves."""

from __future__ import annotations

import argparse

from senet import checks
from senet.cli._common import ModelNames
from senet.cli.train import add_recipe_args, recipe_from_args, use_config_checks


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train several models with the same recipe and seeds; report and curves",
                       description="Example (the main job): senet compare --config configs/demo.yaml "
                                   "--out runs/demo. Writes OUT/report.md, OUT/curves.png, OUT/summary.json and a "
                                   "run folder OUT/<model>/seed<k> per run.")
    p.add_argument("--models", type=ModelNames(), help="comma-separated model names, e.g. resnet20,se_resnet20")
    p.add_argument("--seeds", type=checks.Int(1, 1000), help="number of seeds per model (default 1)")
    p.add_argument("--out", metavar="DIR", type=checks.Path("write-dir"),
                   help="comparison folder (default runs/compare)")
    add_recipe_args(p)
    use_config_checks(p)
    p.set_defaults(func=run)


def _name(item: object) -> str:
    if not isinstance(item, str):
        raise checks.ConfigError(f"models: expected a list of model names, got {item!r}")
    return item


def run(args: argparse.Namespace) -> int:
    from senet.train import compare
    from senet.train.comparison import ModelSummary
    from senet.train.report import format_table

    values, extra = recipe_from_args(args, extra_keys=("models", "seeds"))
    out = values.pop("out", None) or "runs/compare"
    models = args.models if args.models is not None else extra.get("models")
    seeds = args.seeds if args.seeds is not None else extra.get("seeds", 1)
    if models is None:
        raise ValueError("no models to compare: pass --models NAME,NAME or put models: in the --config file")
    try:  # the file's models and seeds get the same checks as --models and --seeds
        if not isinstance(models, (str, list)):
            raise checks.ConfigError(f"models: expected model names, got {models!r}")
        ModelNames()(models if isinstance(models, str) else ",".join(map(_name, models)))
        try:
            seeds = checks.Int(1, 1000)(seeds)
        except checks.ConfigError as exc:
            raise checks.ConfigError(f"seeds: {exc}") from None
    except checks.ConfigError as exc:
        raise checks.ConfigError(f"{args.config}: {exc}" if args.config else str(exc)) from None
    summary = compare(models, values, seeds=seeds, out=out)
    fields = ModelSummary.__dataclass_fields__
    rows = [ModelSummary(**{k: v for k, v in m.items() if k in fields}) for m in summary["models"]]
    print(format_table(rows))
    for diff in summary["differences"]:
        print(f"{diff['model']} vs {diff['baseline']}: {diff['verdict']}")
    print(f"report: {summary['report_md']}; curves: {summary['curves_png']}")
    return 0
