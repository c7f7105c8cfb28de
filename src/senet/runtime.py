"""Process-wide CPU settings that the ``senet`` command applies before it runs (and the benchmarks, by default).

glibc's ``malloc`` serves every block above its *mmap threshold* (at most 32 MiB by default) with a fresh ``mmap``
and hands it back to the kernel with ``munmap`` when it is freed. PyTorch's CPU allocator has no cache of its own,
so each large activation - a (32, 256, 56, 56) float32 map is 98 MiB - costs a page fault and a zeroed page per
4 KiB, every forward pass. For the memory-bound elementwise ops around an SE block that is most of their time, so
large-image CPU inference and training speed up when freed blocks stay in the heap; small maps (28x28 training) are
below the default threshold and do not change. The measurements, with the commands that reproduce them
(``benchmarks/bench_se.py`` and ``benchmarks/bench_models.py`` with ``--malloc default`` / ``--malloc tuned``), are
on the documentation's performance page.

:func:`tune_cpu_allocator` raises glibc's mmap and trim thresholds so freed blocks are reused instead of
returned: the cost is that the process keeps up to ``limit_bytes`` of freed memory (its peak, at most) rather
than giving it back. It is a process-level decision, so neither importing :mod:`senet` nor calling
:func:`senet.cli.main` makes it; the ``senet`` program does (:func:`senet.cli.console_main`), and
``SENET_TUNE_MALLOC=0`` turns that off.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["ENV_VAR", "tune_cpu_allocator"]

#: Set to ``0`` to keep glibc's default malloc thresholds in the ``senet`` command and the benchmarks.
ENV_VAR = "SENET_TUNE_MALLOC"
#: glibc's ``mallopt`` parameter numbers (``<malloc.h>``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Environment variables through which a user already chose glibc malloc settings; they are left alone.
_USER_MALLOC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_INT_MAX = 2**31 - 1


def tune_cpu_allocator(limit_bytes: int = 1 << 30) -> bool:
    """Let glibc's malloc keep freed blocks below ``limit_bytes`` in the heap (mmap and trim thresholds).

    Returns True when the thresholds were set; False (and changes nothing) on a C library other than glibc, when
    ``SENET_TUNE_MALLOC=0``, when the environment already sets ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` or a ``glibc.malloc.*`` tunable (the user's own choice wins), or when glibc refuses
    the mmap threshold (``man mallopt`` documents a 32 MiB cap, which some glibc versions enforce; the trim threshold
    is then not touched either). A preloaded jemalloc or tcmalloc bypasses glibc's malloc, so the call is then
    harmless and without effect.
    """
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or not 0 < limit_bytes <= _INT_MAX:
        raise ValueError(f"limit_bytes must be an int in 1..{_INT_MAX} (mallopt takes a C int), got {limit_bytes!r}")
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(name in os.environ for name in _USER_MALLOC_SETTINGS) or "glibc.malloc." in os.environ.get(
            "GLIBC_TUNABLES", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # The mmap threshold first: setting either one stops glibc's own raising of both (its "dynamic threshold"), so
    # a refused mmap threshold must not leave a fixed trim threshold behind.
    if not mallopt(_M_MMAP_THRESHOLD, limit_bytes):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, limit_bytes))
