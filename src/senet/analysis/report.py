"""The per-block numbers on disk: ``excitation.json`` (everything) and ``excitation.csv`` (one row per block)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from senet.analysis.stats import METRIC_NAMES
from senet.io import atomic_write_bytes, atomic_write_json
from senet.models.naming import parse_se_block_name

__all__ = ["format_depth_table", "report_document", "report_rows", "write_report"]

CSV_COLUMNS = ("block", "stage", "depth", "channels", "images", *METRIC_NAMES)


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    return None if isinstance(value, float) and math.isnan(value) else value


def report_rows(report) -> list[dict[str, Any]]:
    """One dict per recorded block, in depth order, with the columns of :data:`CSV_COLUMNS`."""
    rows = []
    for depth, name in enumerate(report.blocks, start=1):
        if name not in report.metrics:
            continue
        parsed = parse_se_block_name(name)
        stage = parsed[0] if parsed else None
        m = report.metrics[name]
        rows.append({"block": name, "stage": stage, "depth": depth, **{k: _clean(m[k]) for k in
                                                                          ("channels", "images", *METRIC_NAMES)}})
    return rows


def report_document(report, drop_se: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document: settings, per-block numbers, and the class-mean excitations of the charted blocks."""
    doc: dict[str, Any] = {
        **report.info,
        "images": report.images,
        "images_per_class": dict(zip(report.class_names, report.images_per_class)),
        "per_class_requested": report.per_class_requested,
        "top1_on_these_images": report.top1,
        "chart_classes": [report.class_names[k] for k in report.classes],
        "chart_blocks": report.chosen_blocks,
        "definitions": "see senet.analysis.stats: class_specificity = between-class / total sum of squares "
                       "pooled over channels; class_distance = mean RMS channel difference of class means; "
                       "saturated_high/low = fraction of channels with mean > 0.9 / < 0.1; within_class_std = "
                       "sample std averaged over channels and classes",
        "blocks": report_rows(report),
        "class_means": {
            name: {report.class_names[k]: [round(v, 6) for v in report.stats[name].mean[k].tolist()]
                   for k in report.classes}
            for name in report.chosen_blocks if name in report.stats
        },
        "notes": report.notes,
    }
    if drop_se is not None:
        doc["drop_se"] = drop_se
    return doc


def write_report(report, out_dir: str | Path, drop_se: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``excitation.json`` and ``excitation.csv`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    json_path = atomic_write_json(out_dir / "excitation.json", report_document(report, drop_se))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report_rows(report):
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    csv_path = atomic_write_bytes(out_dir / "excitation.csv", buf.getvalue().encode())
    return {"json": json_path, "csv": csv_path}


def format_depth_table(report) -> str:
    """A plain-text table of the per-block numbers, by depth."""
    header = f"{'block':<14}{'C':>6}{'specif.':>9}{'dist.':>8}{'mean s':>8}{'>0.9':>7}{'<0.1':>7}{'std':>7}"
    lines = [header, "-" * len(header)]

    def fmt(row: dict[str, Any], key: str, width: int, spec: str = ".3f") -> str:
        v = row[key]
        return f"{'-':>{width}}" if v is None else f"{v:>{width}{spec}}"

    columns = (("class_specificity", 9, ".3f"), ("class_distance", 8, ".3f"), ("mean_excitation", 8, ".3f"),
               ("saturated_high", 7, ".2f"), ("saturated_low", 7, ".2f"), ("within_class_std", 7, ".3f"))
    for row in report_rows(report):
        cells = "".join(fmt(row, key, width, spec) for key, width, spec in columns)
        lines.append(f"{row['block'][:13]:<14}{row['channels']:>6}{cells}")
    return "\n".join(lines)
