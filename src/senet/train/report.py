"""``report.md`` of a comparison: the table of cost and accuracy, per-seed results, and where the files are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from senet.complexity import MACS_CONVENTION
from senet.io import atomic_write_bytes
from senet.train.significance import paired_difference

__all__ = ["can_tell_section", "format_table", "write_report"]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _top1(row: Any) -> str:
    return f"{_pct(row.top1_mean)} ± {_pct(row.top1_std)}" if len(row.top1) > 1 else _pct(row.top1_mean)


def _val(row: Any) -> str:
    mean = getattr(row, "val_top1_mean", None)
    return "n/a" if mean is None else _pct(mean)


def format_table(rows: list[Any]) -> str:
    """The main markdown table: one line per model; validation and test accuracy in separate columns."""
    split = rows[0].split if rows else "test"
    lines = [
        (f"| model | params | SE params | multiply-adds | train time / run | images/s | val top-1 % "
         f"| {split} top-1 % (mean ± std) | {split} top-5 % |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        top5 = sum(r.top5) / len(r.top5)
        lines.append(f"| {r.model} | {r.params:,} | {r.se_params:,} | {r.macs / 1e6:.2f} M | {r.train_time:.0f} s "
                     f"| {r.images_per_s:.0f} | {_val(r)} | {_top1(r)} | {_pct(top5)} |")
    return "\n".join(lines)


def _optimizer(recipe: dict[str, Any]) -> str:
    if recipe.get("optimizer", "sgd") == "adamw":
        return f"AdamW lr {recipe['lr']} (weight decay {recipe['weight_decay']}, none on norms and biases)"
    return f"SGD lr {recipe['lr']} (momentum {recipe['momentum']}, weight decay {recipe['weight_decay']})"


def _protocol(rows: list[Any], recipe: dict[str, Any]) -> str:
    """One sentence on which model each run reports and on which split."""
    split = rows[0].split if rows else "test"
    held = recipe.get("val_split")
    if split == "val":
        return ("Top-1/top-5: the dataset has no test split, so these are the validation numbers of each run's "
                "selected model (highest validation top-1) - optimistic, since they also selected it.")
    if str(recipe.get("data", "")).startswith(("imagefolder", "synthetic")):
        val = "the dataset's own validation images"
    else:
        val = ("a seeded part of the training files held out for validation "
               f"(val_split {held if held is not None else 'default'})")
    return (f"Val top-1: each run's selected model (highest validation top-1, `best/`) on {val}; test top-1/top-5: "
            f"that model on the test split, evaluated once at the end of the run (the last epoch's model when "
            f"val_split is 0).")


def can_tell_section(summary: dict[str, Any], rows: list[Any]) -> list[str]:
    """"Can these runs tell the models apart?": each model against the first, paired by seed, then what the runs
    can and cannot conclude. An undecided interval bounds the difference (it says how large a gain the runs rule
    out), which is the useful reading of "cannot tell", not "no difference"."""
    if len(rows) < 2:
        return []
    split = rows[0].split
    lines = ["## Can these runs tell the models apart?", ""]
    for diff in summary.get("differences", []):
        lines.append(f"- **{diff['model']} vs {diff['baseline']}** ({split} top-1): {diff['verdict']}.")
    lines.append("")
    seeds = summary["seeds"]
    scope = (f"The answer holds for this recipe: {summary['epochs']} epochs on {summary['data']} with these models. "
             f"Longer training, other data or other widths can give another answer.")
    if seeds < 2:
        lines.append(f"One seed gives no interval, so a difference of any size could be noise. {scope} "
                     f"`--seeds N` trains N paired seeds; the interval narrows roughly as 1/sqrt(N).")
    else:
        halves = [(d["ci95"][1] - d["ci95"][0]) / 2 for d in summary.get("differences", []) if d.get("ci95")]
        width = f"about ±{100 * max(halves):.2f} points" if halves else "its half-width"
        lines.append(
            f"What they can conclude: with 95% confidence the recipe's true mean difference lies in the interval "
            f"(Student t over the {seeds} per-seed differences; seed k of every model shares data order, "
            f"augmentation and held-out split). A difference smaller than {width} is below what {seeds} seeds "
            f"resolve: \"cannot tell\" rules out gains beyond the interval's ends, not every gain. "
            f"What they cannot: {scope[0].lower()}{scope[1:]}")
    lines.append("")
    return lines


def write_report(path: str | Path, summary: dict[str, Any], rows: list[Any]) -> Path:
    """Write the comparison report as markdown next to ``curves.png``."""
    path = Path(path)
    recipe = summary["recipe"]
    seeds = summary["seeds"]
    c, h, w = summary["input_size"]
    parts = [
        f"# {', '.join(r.model for r in rows)} on {summary['data']}",
        "",
        (f"Same recipe and seeds for every model: {summary['epochs']} epochs, batch {recipe['batch_size']}, "
         f"{_optimizer(recipe)}, "
         f"{recipe['schedule']} schedule, warmup {recipe['warmup']} epochs, label smoothing "
         f"{recipe['label_smoothing']}, precision {recipe['precision']}; {seeds} seed(s) from {recipe['seed']}."),
        "",
        format_table(rows),
        "",
        (f"{_protocol(rows, recipe)} ± is the sample standard deviation over "
         f"seeds ({'n/a for one seed' if seeds == 1 else f'{seeds} seeds'}). Multiply-adds per {c}x{h}x{w} image: "
         f"{MACS_CONVENTION}. Train time: wall seconds per run including validation; images/s: training "
         f"throughput, which other work on the machine distorts (`benchmarks/bench_train.py` measures the SE "
         f"overhead interleaved in one process)."),
        "",
    ]
    split = rows[0].split if rows else "test"
    parts += can_tell_section(summary, rows)
    if len(rows) >= 2:
        ref = rows[0]
        parts.append("Differences against " + ref.model + ":")
        parts.append("")
        for r in rows[1:]:
            extra_params = 100 * (r.params - ref.params) / max(ref.params, 1)
            speed = 100 * (r.images_per_s / max(ref.images_per_s, 1e-9) - 1)
            verdict = paired_difference(r.top1, ref.top1).verdict(r.model, ref.model)
            parts.append(f"- {r.model}: top-1 {100 * (r.top1_mean - ref.top1_mean):+.2f} points, parameters "
                         f"{extra_params:+.1f}%, training throughput {speed:+.1f}%. Paired by seed, "
                         f"{split} top-1: {verdict}.")
        parts.append("")
    parts += ["## Per seed", "", f"| model | run folder | val top-1 % | {split} top-1 % | {split} top-5 % |",
              "|---|---|---:|---:|---:|"]
    for r in rows:
        vals = r.val_top1 or [None] * len(r.runs)
        for run, v1, t1, t5 in zip(r.runs, vals, r.top1, r.top5):
            shown = Path(run).relative_to(path.parent) if Path(run).is_relative_to(path.parent) else run
            parts.append(f"| {r.model} | `{shown}` | {'n/a' if v1 is None else _pct(v1)} | {_pct(t1)} | {_pct(t5)} |")
    parts += ["", "## Curves", "", "![validation top-1 and training loss per epoch](curves.png)", "",
              ("Each run folder is a normal `senet train` folder: `senet evaluate <run>` re-evaluates it "
               "(confusion matrix, per-class accuracy); `metrics.csv` holds the per-epoch numbers."), ""]
    atomic_write_bytes(path, "\n".join(parts).encode())
    return path
