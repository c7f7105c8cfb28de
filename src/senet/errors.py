"""Errors meant for people: the CLI prints these as one line and exits with status 2."""


class SenetError(Exception):
    """A problem the user can fix (bad option, missing data, foreign file); the message says how."""


class ConfigError(SenetError, ValueError):
    """An invalid argument or option value; a ``ValueError`` so library callers can catch it as one."""
