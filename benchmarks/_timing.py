"""Shared timing helpers for the scripts in ``benchmarks/``.

Every figure a benchmark prints is a *ratio* of two medians measured side by side in one process: the candidates
run interleaved (A, B, C, A, B, C, ... with the order rotated each round), so slow phases of a noisy, shared
machine hit every candidate alike. Absolute milliseconds are printed too, but only the ratios are meant to be
quoted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch

from senet.layers import se_triton

__all__ = [
    "FORMATS",
    "add_common_args",
    "add_formats_arg",
    "add_malloc_arg",
    "apply_common_args",
    "autocast",
    "describe_machine",
    "format_table",
    "interleaved",
    "median_ms",
    "paired_ratio",
    "sgd_step_fn",
    "spread",
]

DEFAULT_THREADS = 2
#: What :func:`apply_common_args` did to glibc's malloc thresholds, for :func:`describe_machine` to report.
_malloc_state = "malloc not set by the benchmark"
#: The memory formats the benchmarks compare, by the name ``--formats`` takes.
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def add_common_args(parser: argparse.ArgumentParser, repeats: int = 15, warmup: int = 3, gpu: bool = True) -> None:
    """Add ``--threads``, ``--repeats``, ``--warmup`` and (with ``gpu``) ``--device`` / ``--dtype`` to a parser.

    A benchmark that runs on the CPU only, or handles ``--device`` itself, passes ``gpu=False``: no option is
    then accepted and ignored.
    """
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed rounds per candidate (default {repeats})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed rounds per candidate (default {warmup})")
    add_malloc_arg(parser)
    if gpu:
        parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)")
        parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                            help="fp32, or bf16 (bf16 tensors for single ops, bf16 autocast for models)")
    else:
        parser.set_defaults(device="cpu", dtype="fp32")


def add_malloc_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--malloc tuned|default`` (part of :func:`add_common_args`), applied by :func:`apply_common_args`."""
    parser.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                        help="tuned (default): glibc keeps freed blocks, as the senet command runs "
                             "(senet.runtime); default: glibc's thresholds, page faults on every large tensor")


def add_formats_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--formats`` (default: every entry of :data:`FORMATS`)."""
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS),
                        help="memory formats to time (default both)")


def apply_common_args(args: argparse.Namespace) -> None:
    """Pin the thread count, set the allocator, apply ``SENET_SE_KERNEL``, check the device and validate what
    :func:`add_common_args` parsed.

    Sets ``args.sync``: the callable that :func:`interleaved` runs after each timed call (a CUDA synchronize, so
    asynchronous GPU work is inside the measured time), and ``args.torch_dtype``.
    """
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        raise SystemExit("benchmark: --threads and --repeats must be >= 1 and --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmark: --device cuda, but torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    se_triton.enable_from_environment()  # SENET_SE_KERNEL=triton: the fused SE tail (run_gpu_triton.sh)
    global _malloc_state
    if args.malloc == "tuned":
        from senet.runtime import tune_cpu_allocator

        tuned = tune_cpu_allocator()
        _malloc_state = "malloc tuned" if tuned else "malloc NOT tuned (not glibc, or set by the environment)"
    else:
        _malloc_state = "glibc's default malloc"
    args.sync = torch.cuda.synchronize if args.device == "cuda" else None
    args.torch_dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``args.device`` when ``--dtype bf16``, else a no-op context (plain fp32)."""
    if args.dtype == "bf16":
        return torch.autocast(args.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sgd_step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace,
                **sgd: float | bool) -> Callable[[], None]:
    """One training step per call: zero the gradients, forward and cross-entropy (under :func:`autocast`), backward,
    an SGD update with ``sgd`` options (default lr 1e-3, momentum 0.9)."""
    import torch.nn.functional as F

    opt = torch.optim.SGD(model.parameters(), **{"lr": 1e-3, "momentum": 0.9, **sgd})

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(args):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return run


def describe_machine(device: str = "cpu") -> str:
    """One line naming the software and the processor (and the GPU, for ``device="cuda"``) the numbers come from."""
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load avg {os.getloadavg()[0]:.1f}"
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ""
    return (
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads{load}{gpu}, {_malloc_state}"
        f"{', SE tail: fused Triton kernels' if se_triton.enabled() else ''}"
    )


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    repeats: int = 15,
    warmup: int = 3,
    inner: int = 1,
    sync: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Time each zero-argument callable ``repeats`` times, interleaved round by round.

    Each round calls every candidate ``inner`` times in a row and records seconds per call; the candidate order
    is rotated every round so no candidate always runs right after the same neighbour. ``warmup`` untimed
    rounds come first (allocator, one-time dispatch, torch.compile). ``sync`` (e.g. ``torch.cuda.synchronize``)
    runs before each clock start and before each clock read, so queued device work is counted where it belongs.
    Returns name -> list of per-call seconds.
    """
    wait = sync or (lambda: None)
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    wait()
    times: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                fn = candidates[name]
                wait()
                start = time.perf_counter()
                for _ in range(inner):
                    fn()
                wait()
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
