"""Errors meant for people: the CLI prints these as one line and exits with status 2."""


class SenetError(Exception):
    """A problem the user can fix (bad option, missing data, foreign file); the message says how."""


class ConfigError(SenetError, ValueError):
    """An invalid argument or option value; a ``ValueError`` so library callers can catch it as one."""


class MissingExtraError(SenetError, ModuleNotFoundError):
    """An optional package is not installed; the message names the ``pip install "senet[extra]"`` that adds it.

    A :class:`SenetError`, so the CLI prints it as one line with exit status 2, and a ``ModuleNotFoundError``, so
    code that probes for an optional package with ``except ImportError`` keeps working.
    """
