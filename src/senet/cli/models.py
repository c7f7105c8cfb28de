"""``senet models [--filter PATTERN]``: the registered models as a sorted table (answers without importing torch)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models: family, parameters, multiply-adds, SE or not",
                       description="Registered models, sorted by name. Parameters and multiply-adds are at the "
                                   "model's default input size and default arguments (senet summary NAME counts "
                                   "other sizes and arguments).")
    p.add_argument("pattern", nargs="?", help="shell-style filter such as 'se_*', or a part of the name")
    p.add_argument("--filter", dest="filter", metavar="PATTERN", help="the same filter, as an option")
    p.add_argument("--names", action="store_true", help="print only the names, one per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senet.cli.catalogue import matching

    pattern = args.filter or args.pattern
    rows = matching(pattern)
    if not rows:
        print(f"no model matches {pattern!r}")
        return 1
    if args.names:
        print("\n".join(row["name"] for row in rows))
        return 0
    width = max(len(row["name"]) for row in rows)
    print(f"{'model':<{width}}  {'family':<17}{'params':>8}{'MACs':>9}  {'input':<12}SE")
    for row in rows:
        size = "x".join(map(str, row["input_size"]))
        print(f"{row['name']:<{width}}  {row['family']:<17}{_short(row['params']):>8}{_short(row['macs']):>9}  "
              f"{size:<12}{'yes' if row['se'] else 'no'}")
    print("MACs: multiply-adds of one image at the input size shown (senet summary NAME for the convention)")
    return 0


def _short(count: int) -> str:
    """``28.09M``, ``309.9K``, ``3.87G``: three or four significant digits."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.{2 if count / scale < 100 else 1}f}{unit}"
    return str(count)
