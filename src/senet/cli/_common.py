"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import ast
from typing import Any

from senet.errors import ConfigError


def parse_literal(text: str) -> Any:
    """A Python literal (``16``, ``False``, ``(2, 3)``, ``'avg'``); a bare word such as ``avg`` is kept as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if text.replace("_", "").replace("-", "").isalnum():
            return text
        raise ConfigError(f"cannot parse {text!r} as a Python literal") from None


def parse_model_args(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["reduction=8", "se_stages=(2, 3)"]`` into keyword arguments; malformed pairs raise ``ConfigError``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--model-arg expects KEY=VALUE with KEY a Python name, got {pair!r}")
        out[key] = parse_literal(value.strip())
    return out


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model-arg KEY=VALUE`` (repeatable): keyword arguments for the model builder."""
    parser.add_argument(
        "--model-arg", "-m", action="append", default=[], metavar="KEY=VALUE",
        help="keyword argument for the model builder, value parsed as a Python literal (repeatable)",
    )
