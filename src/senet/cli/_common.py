"""The parser every subcommand uses, and argument helpers shared by subcommands (nothing here imports torch).

Every option that takes a value is checked by a :mod:`senet.checks` object when it is parsed: :func:`harden` gives
options declared with a plain ``int``/``float``/``str`` type (or none) the matching check (finite numbers, non-empty
text), so an option added later is checked too. A parse error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from senet import checks
from senet.errors import ConfigError

#: Checks an option gets when it declares only a plain Python type.
PLAIN_TYPES = {None: checks.Text(), str: checks.Text(), int: checks.Int(), float: checks.Float()}


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (``senet: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"senet: error: {text} (see {self.prog} --help)\n")


class _CheckedType:
    """An argparse ``type=`` around a :class:`senet.checks.Check`: its ConfigError becomes argparse's error."""

    def __init__(self, check: checks.Check) -> None:
        self.check = check
        self.__name__ = check.describe()

    def __call__(self, text: str) -> Any:
        try:
            return self.check(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def check_of(action: argparse.Action) -> checks.Check | None:
    """The :class:`senet.checks.Check` behind an option (after :func:`harden`), or None for a custom type."""
    return action.type.check if isinstance(action.type, _CheckedType) else None


def harden(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every value-taking option of ``parser`` and its subcommands a check (see the module docstring)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                harden(sub)
            continue
        if action.nargs == 0 or isinstance(action.type, _CheckedType):
            continue
        if action.choices is not None and action.type is None:
            action.type = _CheckedType(checks.Choice(str(c) for c in action.choices))
        elif isinstance(action.type, checks.Check):
            action.type = _CheckedType(action.type)
        elif action.type in PLAIN_TYPES:
            action.type = _CheckedType(PLAIN_TYPES[action.type])
    return parser


def parse_literal(text: str) -> Any:
    """A Python literal (``16``, ``False``, ``(2, 3)``, ``'avg'``); a bare word such as ``avg`` is kept as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        if text.replace("_", "").replace("-", "").isalnum():
            return text
        raise ConfigError(f"cannot parse {text!r} as a Python literal") from None


class ModelArg(checks.Check):
    """``KEY=VALUE`` with KEY a Python name and VALUE a Python literal (a keyword argument of a model builder)."""

    kind = "key=value"

    def describe(self) -> str:
        return "KEY=VALUE with KEY a Python name"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(value)
        key, sep, literal = value.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"--model-arg expects KEY=VALUE with KEY a Python name, got {value!r}")
        parse_literal(literal.strip())
        return value


def parse_model_args(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["reduction=8", "se_stages=(2, 3)"]`` into keyword arguments; malformed pairs raise ``ConfigError``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        ModelArg()(pair)
        key, _, value = pair.partition("=")
        out[key.strip()] = parse_literal(value.strip())
    return out


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model-arg KEY=VALUE`` (repeatable): keyword arguments for the model builder."""
    parser.add_argument(
        "--model-arg", "-m", action="append", default=[], metavar="KEY=VALUE", type=ModelArg(),
        help="keyword argument for the model builder, value parsed as a Python literal (repeatable)",
    )


class ModelName(checks.Check):
    """A registered model name, looked up in the shipped catalogue (no torch import); close matches are suggested."""

    kind = "model"

    def describe(self) -> str:
        return "a registered model name (see senet models)"

    def __call__(self, value: Any) -> str:
        from senet.cli.catalogue import model_names

        names = model_names()
        if isinstance(value, str) and value in names:
            return value
        close = difflib.get_close_matches(str(value), names, n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; senet models lists them"
        raise ConfigError(f"unknown model {value!r}{hint}")


class ModelNames(checks.Check):
    """Comma-separated registered model names (``resnet20,se_resnet20``); returned as given."""

    kind = "model-list"

    def describe(self) -> str:
        return "comma-separated model names"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip(","):
            raise self.fail(value)
        for name in value.split(","):
            ModelName()(name.strip())
        return value


class Device(checks.Check):
    """A torch device name: ``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``xpu`` (checked without importing torch)."""

    kind = "device"
    PATTERN = re.compile(r"(cpu|cuda|mps|xpu)(:\d{1,3})?")

    def describe(self) -> str:
        return "a device such as cpu, cuda, cuda:1 or mps"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not self.PATTERN.fullmatch(value.strip()):
            raise ConfigError(f"unknown device {value!r}; expected {self.describe()}")
        return value.strip()


def input_size_arg(parser: argparse.ArgumentParser, help: str) -> None:
    """``--input-size C H W``: each a whole number, sides at most :data:`senet.checks.IMAGE_SIDE_MAX`."""
    parser.add_argument("--input-size", nargs=3, type=checks.Int(1, checks.IMAGE_SIDE_MAX), metavar=("C", "H", "W"),
                        help=f"{help}; each at most {checks.IMAGE_SIDE_MAX}")


def refuse_overwriting_inputs(writes: list[str | Path], reads: list[str | Path], flag: str = "--out") -> None:
    """Raise when a file the command writes is one it reads (same path after links are followed)."""
    read_paths = {Path(p).expanduser().resolve(): p for p in reads}
    for item in writes:
        target = Path(item).expanduser().resolve()
        if target in read_paths:
            raise ConfigError(f"{flag} would overwrite {read_paths[target]}, which this command reads; "
                              f"write somewhere else")


def debug_requested(argv: list[str]) -> bool:
    """``--traceback`` anywhere on the command line, or ``SENET_DEBUG`` set to anything but empty/0."""
    return "--traceback" in argv or os.environ.get("SENET_DEBUG", "") not in ("", "0")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def say(message: str) -> None:
    print(message, file=sys.stderr)
