"""``senet complexity NAME [NAME ...]``: parameters and multiply-adds of models side by side.

``senet complexity --paper [--table T ...]``: the paper's printed complexity rows (Tables 2, 3, 10, 13, 15, 16)
beside ours, with the differences; rows outside the bounds are marked and counted (exit status 0: it is a report).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from senet import checks
from senet.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from senet.cli._common import ModelName, add_model_args, input_size_arg
    from senet.paper import PAPER_TABLES

    p = sub.add_parser("complexity", help="parameters and multiply-adds; --paper compares with the paper's tables")
    p.add_argument("names", nargs="*", type=ModelName(), help="registered model names")
    add_model_args(p)
    input_size_arg(p, "input size without batch (default: each model's own)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--paper", action="store_true",
                   help="compare the paper's complexity tables (2, 3, 10, 13, 15, 16) with our models")
    p.add_argument("--table", action="append", default=None, metavar="T", type=_PaperTable(PAPER_TABLES),
                   help="with --paper: only this table (repeatable), e.g. --table 2 --table 10")
    p.set_defaults(func=run)


class _PaperTable(checks.Choice):
    """A table of the paper with complexity rows (``2``, ``3``, ``10``, ...)."""

    def __call__(self, value: Any) -> str:
        if str(value) not in self.choices:
            raise ConfigError(f"no paper table {value}; choose from {', '.join(self.choices)}")
        return str(value)


def run(args: argparse.Namespace) -> int:
    if args.paper:
        if args.names or args.model_arg or args.input_size:
            raise ConfigError("--paper takes no model names, --model-arg or --input-size: each row names its own")
        return _run_paper(args.table, args.json)
    if args.table:
        raise ConfigError("--table selects rows of --paper; add --paper")
    if not args.names:
        raise ConfigError("name at least one model, e.g. senet complexity resnet50 se_resnet50, or use --paper")
    return _run_models(args)


def _run_models(args: argparse.Namespace) -> int:
    import torch

    from senet.cli._common import parse_model_args
    from senet.complexity import MACS_CONVENTION, model_complexity
    from senet.models import create_model, default_input_size

    kwargs = parse_model_args(args.model_arg)
    rows = []
    for name in args.names:
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


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _model_text(row: dict[str, Any]) -> str:
    """``se_resnet50 reduction=8``: the model and the keyword arguments that build the row's equivalent."""
    return " ".join([row["model"], *(f"{k}={json.dumps(v).replace(' ', '')}" for k, v in row["kwargs"].items())])


def _run_paper(tables: list[str] | None, as_json: bool) -> int:
    from senet.complexity import MACS_CONVENTION
    from senet.paper import MACS_REL_TOL, PARAMS_ABS_TOL_M, PARAMS_REL_TOL_SMALL, SMALL_MODEL_M, compare_with_paper

    rows = compare_with_paper(tables)
    flagged = sum(r["flagged"] for r in rows)
    if as_json:
        print(json.dumps({"convention": MACS_CONVENTION, "flagged": flagged, "rows": rows}, indent=2))
        return 0
    print("arXiv 1709.01507 (v4) complexity tables vs senet ('!' = outside the bounds, [n] = note below)")
    head = (f"{'table':<6}{'row':<24}{'model':<38}{'input':>6}  {'params M: paper':>15}{'ours':>9}{'diff':>8}"
            f"  {'GMACs: paper':>12}{'ours':>8}{'diff %':>8}")
    print(head)
    print("-" * len(head))
    notes: list[str] = []
    for r in rows:
        refs = []
        for note in r["notes"]:
            if note not in notes:
                notes.append(note)
            refs.append(f"[{notes.index(note) + 1}]")
        p_mark = "!" if r["params_ok"] is False else " "
        m_mark = "!" if r["macs_ok"] is False else " "
        line = (f"{r['table']:<6}{r['label']:<24}{_model_text(r):<38}{r['input_size'][-1]:>6}  "
                f"{_fmt(r['paper_params_m'], '.1f'):>15}{r['params_m']:>9.3f}{_fmt(r['params_diff_m'], '+.3f'):>8}"
                f"{p_mark} {_fmt(r['paper_gflops'], '.3f'):>12}{r['gmacs']:>8.3f}"
                f"{_fmt(r['macs_diff_pct'], '+.2f'):>8}{m_mark} {''.join(refs)}")
        print(line.rstrip())
    print(f"\nGMACs (the paper's 'GFLOPs'): {MACS_CONVENTION}.")
    print(f"Bounds: params within {PARAMS_ABS_TOL_M}M ({PARAMS_REL_TOL_SMALL:.0%} below {SMALL_MODEL_M:g}M params); "
          f"multiply-adds within {MACS_REL_TOL:.1%}.")
    print(f"{flagged} of {len(rows)} rows outside the bounds.")
    for i, note in enumerate(notes, start=1):
        print(f"[{i}] {note}")
    return 0
