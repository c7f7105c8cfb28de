"""Checks of user-given values, shared by the command-line flags and the training config (YAML or Python).

Each check is a small callable object: called with a value (the text of a flag, or a value from a YAML file) it
returns the value converted to its type, or raises :class:`~senet.errors.ConfigError` with one line saying what
was expected. The same object serves as an ``argparse`` ``type=`` and as the declared check of a
:class:`senet.train.config.TrainConfig` field, so a flag and its YAML key can never disagree.

``kind`` names the family of values a check accepts (``"int"``, ``"float"``, ``"text"``, ``"choice"``, ``"path"``);
the generated bad-input tests read it, with the bounds, to know which values must be refused.

This module imports nothing heavy: ``senet --help`` parses with it before torch is loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

from senet.errors import ConfigError

__all__ = ["IMAGE_SIDE_MAX", "INT_MAX", "Check", "Choice", "ConfigError", "Float", "Int", "Path", "Text"]

#: The largest integer any count, size or seed may be: larger values are typos, not requests.
INT_MAX = 2**31 - 1
#: The largest image side (pixels) a command allocates real tensors for (``--input-size`` of summary/export).
IMAGE_SIDE_MAX = 2048


class Check:
    """Base class: ``check(value)`` returns the converted value or raises :class:`ConfigError`."""

    kind = "any"

    def describe(self) -> str:
        return "value"

    def __call__(self, value: Any) -> Any:
        raise NotImplementedError

    def fail(self, value: Any) -> ConfigError:
        shown = repr(value) if not isinstance(value, str) or value else "an empty value"
        return ConfigError(f"expected {self.describe()}, got {shown}")


class Int(Check):
    """An integer in ``[lo, hi]``. Text is parsed (``"8"``); booleans and fractions are refused."""

    kind = "int"

    def __init__(self, lo: int | None = None, hi: int = INT_MAX) -> None:
        self.lo, self.hi = lo, hi

    def describe(self) -> str:
        if self.lo is None:
            return f"an integer <= {self.hi}"
        return f"an integer from {self.lo} to {self.hi}"

    def __call__(self, value: Any) -> int:
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise self.fail(value) from None
        if isinstance(number, bool) or not isinstance(number, int):
            raise self.fail(value)
        if (self.lo is not None and number < self.lo) or number > self.hi:
            raise self.fail(value)
        return number


class Float(Check):
    """A finite number in a range; ``lo_open``/``hi_open`` exclude the bound itself. NaN and inf are refused."""

    kind = "float"

    def __init__(self, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False) -> None:
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return (f"a number in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"a finite number {'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"a finite number {'<' if self.hi_open else '<='} {self.hi:g}"
        return "a finite number"

    def __call__(self, value: Any) -> float:
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise self.fail(value) from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise self.fail(value)
        number = float(number)
        if not math.isfinite(number):
            raise self.fail(value)
        if self.lo is not None and (number < self.lo or (self.lo_open and number == self.lo)):
            raise self.fail(value)
        if self.hi is not None and (number > self.hi or (self.hi_open and number == self.hi)):
            raise self.fail(value)
        return number


class Text(Check):
    """Non-empty text on one line (a name, a device, a pattern); numbers from YAML are refused, not guessed."""

    kind = "text"

    def __init__(self, what: str = "text") -> None:
        self.what = what

    def describe(self) -> str:
        return f"{self.what} (non-empty text)"

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or any(c in value for c in "\n\r\0"):
            raise self.fail(value)
        return value


class Choice(Check):
    """One of a fixed set of words (YAML numbers such as ``precision: 32`` are read as their text)."""

    kind = "choice"

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)

    def describe(self) -> str:
        return f"one of {', '.join(self.choices)}"

    def __call__(self, value: Any) -> str:
        text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
        if text not in self.choices:
            raise self.fail(value)
        return text


class Path(Check):
    """A file-system path given as text.

    ``role`` is what the command does with it: ``"read-file"`` (an existing file), ``"read-dir"`` (an existing
    folder), ``"read"`` (an existing file or folder), ``"write"`` (a file or a folder to write; not below a
    file), ``"write-file"`` (a file to create or replace: not a folder,
    its parent may be created), ``"write-dir"`` (a folder to create or fill: not a file, nor under a file).
    """

    kind = "path"
    ROLES = ("read-file", "read-dir", "read", "write", "write-file", "write-dir")

    def __init__(self, role: str) -> None:
        if role not in self.ROLES:
            raise ValueError(f"unknown path role {role!r}")
        self.role = role

    def describe(self) -> str:
        return {"read-file": "an existing file", "read-dir": "an existing folder", "read": "an existing file or folder",
                "write": "a file or folder path to write", "write-file": "a file path (not a folder)", "write-dir": "a folder path (not a file)"}[self.role]

    def __call__(self, value: Any) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ConfigError(f"expected {self.describe()}, got {value!r}")
        path = os.path.expanduser(value)
        if self.role.startswith("read"):
            if not os.path.exists(path):
                raise ConfigError(f"no such {'folder' if self.role == 'read-dir' else 'file or folder'}: {value}")
            if self.role == "read-file" and os.path.isdir(path):
                raise ConfigError(f"{value} is a folder; expected a file")
            if self.role == "read-dir" and not os.path.isdir(path):
                raise ConfigError(f"{value} is a file; expected a folder")
            return value
        if self.role == "write-file" and os.path.isdir(path):
            raise ConfigError(f"{value} is a folder; expected a file path to write")
        if self.role == "write-dir" and os.path.exists(path) and not os.path.isdir(path):
            raise ConfigError(f"{value} is a file; expected a folder to write into")
        _check_parents(value, path)
        return value


def _check_parents(value: str, path: str) -> None:
    """Refuse a path that would have to be created below an existing file (``out.txt/run``)."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            return
        parent = up
    if parent and not os.path.isdir(parent):
        raise ConfigError(f"cannot write {value}: {parent} is a file, not a folder")
