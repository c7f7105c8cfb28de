"""What pruning bought and cost: parameters, multiply-adds, latency measured side by side, and the report files."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.io import atomic_write_bytes, atomic_write_json

__all__ = ["cost_of", "format_prune_report", "measure_latency", "write_prune_report"]


def cost_of(model: nn.Module, input_size: tuple[int, ...]) -> dict[str, int]:
    """``params``, ``se_params`` and ``macs`` for one image (the convention of :mod:`senet.complexity`)."""
    from senet.complexity import model_complexity

    return model_complexity(model, input_size)


def measure_latency(
    original: nn.Module,
    pruned: nn.Module,
    batch: torch.Tensor,
    *,
    repeats: int = 7,
    min_seconds: float = 0.5,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Forward time of both models on ``batch``, interleaved in one process so they share the machine's state.

    Each repeat times the two models back to back (alternating which goes first) over enough forwards to last
    ``min_seconds``; the medians over ``repeats`` are compared. ``ratio`` is pruned / original (below 1: faster).
    """
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    models = {"original": original.eval(), "pruned": pruned.eval()}
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():  # warm-up: first-call allocations and kernel choices
            m(batch)
        start = time.perf_counter()
        models["original"](batch)
        once = max(time.perf_counter() - start, 1e-6)
        iters = max(1, round(min_seconds / once))
        for r in range(repeats):
            for key in (("original", "pruned") if r % 2 == 0 else ("pruned", "original")):
                start = time.perf_counter()
                for _ in range(iters):
                    models[key](batch)
                times[key].append((time.perf_counter() - start) / iters)
    ms = {k: 1000.0 * statistics.median(v) for k, v in times.items()}
    return {"batch": int(batch.shape[0]), "device": str(batch.device), "threads": torch.get_num_threads(),
            "repeats": repeats, "iterations": iters, "original_ms": ms["original"], "pruned_ms": ms["pruned"],
            "ratio": ms["pruned"] / ms["original"]}


def _pct(after: float, before: float) -> str:
    return f"{100.0 * (after - before) / before:+.1f}%" if before else "n/a"


def _cost_rows(summary: dict[str, Any]) -> list[str]:
    """The before/after table: parameters, multiply-adds, forward time, validation and test top-1."""
    before, after = summary["cost"]["before"], summary["cost"]["after"]
    val, test, lat, imgs = summary["val_top1"], summary["test_top1"], summary["latency"], summary["images"]
    rows = [(label, f"{before[key]:,}", f"{after[key]:,}", _pct(after[key], before[key]))
            for label, key in (("parameters", "params"), ("SE parameters", "se_params"),
                               ("multiply-adds per image", "macs"))]
    rows.append((f"forward time, batch {lat['batch']} ({lat['device']}, {lat['threads']} threads)",
                 f"{lat['original_ms']:.2f} ms", f"{lat['pruned_ms']:.2f} ms", f"x{lat['ratio']:.3f}"))
    accuracies = [(f"validation top-1 ({imgs['validation']} held-out images)", val)]
    if test is not None:
        accuracies.append((f"test top-1 ({imgs['test']} images, evaluated once at the end)", test))
    for label, acc in accuracies:
        rows.append((label, f"{acc['before']:.2f}%", f"{acc['after']:.2f}%", f"{acc['after'] - acc['before']:+.2f}"))
    return ["| | before | after | change |", "|---|---:|---:|---:|", *("| " + " | ".join(r) + " |" for r in rows)]


def _step_rows(summary: dict[str, Any]) -> list[str]:
    """One row per block tried: its statistics, the validation top-1 once removed, and what became of it."""
    metrics = summary.get("block_metrics", {})
    lines = ["| block | class specificity | within-class spread | validation top-1 | result |",
             "|---|---:|---:|---:|---|"]
    for step in summary["steps"]:
        m = metrics.get(step["block"], {})
        acc = "-" if step["val_top1"] is None else f"{step['val_top1']:.2f}%"
        if step["kept"]:
            result = "removed"
        else:
            result = f"skipped: {step['note']}" if step["note"] else "kept (over budget)"
        spec, spread = m.get("class_specificity", float("nan")), m.get("within_class_std", float("nan"))
        lines.append(f"| {step['block']} | {spec:.3f} | {spread:.4f} | {acc} | {result} |")
    return lines


def format_prune_report(summary: dict[str, Any]) -> str:
    """The Markdown report of :func:`senet.analysis.prune.prune_run`."""
    removed, lat, imgs = summary["removed"], summary["latency"], summary["images"]
    how = {"mean": "replaced by its mean excitation per channel (measured on training images), folded into the "
                   "preceding layer", "identity": "replaced by identity (s = 1)"}[summary["replace"]]
    budget = f", budget {summary['max_drop']} points of validation top-1" if summary["max_drop"] is not None else ""
    out = summary["out"]
    return "\n".join([
        f"# Pruned SE blocks of {summary['model']} ({summary['data']})",
        "",
        f"From `{summary['run']}`. Selection: {summary['selection']}{budget}.",
        f"Removed {len(removed)} block(s): {', '.join(removed) or 'none'}; each {how}.",
        "",
        *_cost_rows(summary),
        "",
        (f"Forward time: median of {lat['repeats']} interleaved repeats of {lat['iterations']} forward pass(es) "
        f"each, both models in the same process. The statistics and the constants come from {imgs['statistics']} "
        "training images outside the validation part; the test split chose nothing."),
        "",
        "## Steps (in the order tried)",
        "",
        *_step_rows(summary),
        "",
        (f'Load it with `senet.load_model("{out}")`; evaluate with `senet evaluate {out}`; export with '
        f"`senet export {out}`."),
        "",
    ])


def write_prune_report(summary: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``report.json`` and ``report.md`` into ``out``."""
    out = Path(out)
    return {"report_json": atomic_write_json(out / "report.json", summary),
            "report_md": atomic_write_bytes(out / "report.md", format_prune_report(summary).encode())}
