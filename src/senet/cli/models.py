"""``senet models [PATTERN]``: list registered model names."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'se_*'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senet.models import list_models

    names = list_models(args.pattern)
    if not names:
        print(f"no model matches {args.pattern!r}")
        return 1
    print("\n".join(names))
    return 0
