"""Shared timing helpers for the scripts in ``benchmarks/``.

Every figure a benchmark prints is a *ratio* of two medians measured side by side in one process: the candidates
run interleaved (A, B, C, A, B, C, ... with the order rotated each round), so slow phases of a noisy, shared
machine hit every candidate alike. Absolute milliseconds are printed too, but only the ratios are meant to be
quoted.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch

__all__ = [
    "add_common_args",
    "apply_common_args",
    "describe_machine",
    "format_table",
    "interleaved",
    "median_ms",
    "paired_ratio",
    "spread",
]

DEFAULT_THREADS = 2


def add_common_args(parser: argparse.ArgumentParser, repeats: int = 15, warmup: int = 3) -> None:
    """Add ``--threads``, ``--repeats`` and ``--warmup`` to a benchmark's parser."""
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed rounds per candidate (default {repeats})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed rounds per candidate (default {warmup})")


def apply_common_args(args: argparse.Namespace) -> None:
    """Pin the thread count and validate the repeat counts parsed by :func:`add_common_args`."""
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        raise SystemExit("benchmark: --threads and --repeats must be >= 1 and --warmup >= 0")
    torch.set_num_threads(args.threads)


def describe_machine() -> str:
    """One line naming the software and the CPU the numbers come from."""
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load avg {os.getloadavg()[0]:.1f}"
    return (
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads{load}"
    )


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    repeats: int = 15,
    warmup: int = 3,
    inner: int = 1,
) -> dict[str, list[float]]:
    """Time each zero-argument callable ``repeats`` times, interleaved round by round.

    Each round calls every candidate ``inner`` times in a row and records seconds per call; the candidate order
    is rotated every round so no candidate always runs right after the same neighbour. ``warmup`` untimed
    rounds come first (allocator, one-time dispatch, torch.compile). Returns name -> list of per-call seconds.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                fn = candidates[name]
                start = time.perf_counter()
                for _ in range(inner):
                    fn()
                times[name].append((time.perf_counter() - start) / inner)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def median_ms(samples: list[float]) -> float:
    """Median of a list of seconds, in milliseconds."""
    return statistics.median(samples) * 1e3


def paired_ratio(samples: list[float], baseline: list[float]) -> float:
    """Median over rounds of ``samples[i] / baseline[i]``.

    Both lists come from the same :func:`interleaved` call, so round i of each ran back to back: the per-round
    ratio cancels the slow drifts of a shared machine better than a ratio of two medians.
    """
    return statistics.median(a / b for a, b in zip(samples, baseline))


def spread(samples: list[float]) -> float:
    """Relative interquartile range: a quick noise indicator printed beside each median."""
    if len(samples) < 4:
        return float("nan")
    q = statistics.quantiles(samples, n=4)
    return (q[2] - q[0]) / statistics.median(samples)


def format_table(header: list[str], rows: list[list[object]]) -> str:
    """Left-aligned plain-text table (markdown pipes), so output pastes straight into the README."""
    cells = [[str(c) for c in header]] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
