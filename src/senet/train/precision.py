"""The numeric precision a run asks for must be the one it runs with.

Lightning Fabric quietly replaces a precision the device cannot run (``16-mixed`` on a CPU becomes ``bf16-mixed``).
The two are different numerics (fp16 keeps 10 mantissa bits and needs loss scaling, bf16 keeps 7 and does not), so
a run folder recording ``16-mixed`` would describe a run that never happened. Such a request is refused in one line,
naming the precision the device offers instead, rather than replaced: the user decides, and ``run.json`` stays true.
"""

from __future__ import annotations

from typing import Any

from senet.errors import ConfigError

__all__ = ["check_precision", "fabric_precision", "used_precision"]


def fabric_precision(requested: str) -> str:
    """The Fabric name of a ``--precision`` value (``"32"`` is Fabric's ``"32-true"``)."""
    return "32-true" if str(requested) in ("32", "32-true") else str(requested)


def used_precision(fabric: Any) -> str:
    """The precision ``fabric`` actually set up (after any replacement of its own)."""
    return str(getattr(fabric.strategy.precision, "precision", "32-true"))


def check_precision(fabric: Any, requested: str, accelerator: str) -> None:
    """Raise :class:`ConfigError` when ``fabric`` runs another precision than ``requested``."""
    used = used_precision(fabric)
    if used != fabric_precision(requested):
        device = fabric.device.type
        raise ConfigError(f"--precision {requested} cannot run on {device} (accelerator={accelerator}); Fabric would "
                          f"silently use {used} instead: pass --precision {used} or --precision 32")
