"""The ``senet`` command. Each subcommand lives in ``senet/cli/<name>.py`` and only parses and calls the library.

A subcommand module defines ``add_parser(subparsers)``, which registers its parser and sets ``func`` to a
``run(args) -> int`` function. Registering imports nothing heavy (torch is imported inside each ``run``), so
``senet --help``, ``senet --version`` and ``senet models`` answer at once.

The error contract (docs/errors.md): a bad option, bad input file or operating-system error (disk full, permission)
ends as one line on stderr and exit status 2; a failure that is a bug in senet ends as one line and status 1;
``--traceback`` or ``SENET_DEBUG=1`` shows the full traceback instead. Option values are checked while parsing
(:mod:`senet.cli._common`), before any work starts.

The ``senet`` program (:func:`console_main`, also ``python -m senet``) first lets glibc keep large freed blocks
(:func:`senet.runtime.tune_cpu_allocator`; ``SENET_TUNE_MALLOC=0`` keeps the defaults); :func:`main` alone, as
tests and other programs call it, does not.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from senet.cli._common import Parser, debug_requested, first_line, harden, say
from senet.errors import SenetError
from senet.runtime import tune_cpu_allocator

#: Subcommand modules, in the order ``senet --help`` lists them.
COMMANDS = ("models", "summary", "complexity", "excite", "convert", "export", "train", "evaluate", "compare")
#: Exit status of a refused command (bad input, missing or unwritable files); 1 means a bug in senet.
USER_ERROR = 2
DEBUG_HINT = "--traceback or SENET_DEBUG=1 shows the details"


def version() -> str:
    """The installed distribution's version; the source tree's ``senet.__version__`` when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("senet")
    except PackageNotFoundError:
        from senet import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="senet", description="Squeeze-and-Excitation networks (arXiv 1709.01507)")
    parser.add_argument("--version", action="version", version=f"senet {version()}")
    parser.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error (for bug reports); also SENET_DEBUG=1")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"senet.cli.{name}").add_parser(sub)
    return harden(parser)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--traceback"]
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a parse error already printed as one line
            return exc.code if isinstance(exc.code, int) else USER_ERROR
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        say("senet: interrupted")
        return 130
    except BrokenPipeError:  # `senet ... | head`: the reader left; stay quiet like other Unix tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        if debug:
            raise
        message, status = describe_error(exc)
        say(f"senet: {message} ({DEBUG_HINT})")
        return status


def describe_error(exc: Exception) -> tuple[str, int]:
    """One line for ``exc`` and the exit status: 2 for what the user can fix, 1 for a bug in senet."""
    if isinstance(exc, (SenetError, ValueError)):
        return f"error: {first_line(exc)}", USER_ERROR
    if isinstance(exc, OSError):
        return f"error: {os_error_text(exc)}", USER_ERROR
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "error: out of memory; use a smaller --batch-size or --input-size", USER_ERROR
    if isinstance(exc, ImportError):  # an optional extra that is not installed
        return f"error: {first_line(exc)}", USER_ERROR
    return f"internal error ({type(exc).__name__}: {first_line(exc)}); please report it", 1


def os_error_text(exc: OSError) -> str:
    """``PATH: reason`` for an operating-system error; a disk-full error says so plainly."""
    if exc.errno == errno.ENOSPC:
        reason = "disk full (no space left on device)"
    elif exc.errno == errno.EDQUOT:
        reason = "disk quota exceeded"
    else:
        reason = exc.strerror or first_line(exc)
    if exc.filename is None:
        return reason if exc.strerror or exc.errno in (errno.ENOSPC, errno.EDQUOT) else first_line(exc)
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"{where}: {reason}"


def console_main() -> int:
    """The ``senet`` program: tune the process's allocator (it owns the process), then :func:`main`."""
    tune_cpu_allocator()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
