"""The analysis end to end: a class-balanced sample through the recorder, and the drop-SE-stage comparison.

This is what ``senet excite`` runs; the CLI only parses arguments and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from senet.analysis.recorder import ExcitationRecorder, channel_gates
from senet.analysis.selection import balanced_indices, dataset_labels, resolve_blocks, resolve_classes
from senet.analysis.stats import ClassStats, block_metrics
from senet.analysis.surgery import remove_se, se_stage_of
from senet.complexity import count_params, se_params
from senet.errors import SenetError
from senet.io import check_data_fits_model
from senet.models.naming import named_se_blocks
from senet.train.metrics import topk_correct

__all__ = ["AnalysisOutput", "ExcitationReport", "analyze_excitations", "compare_without_se", "make_eval_loader",
           "run_analysis"]


@dataclass
class ExcitationReport:
    """Everything the analysis measured: per-block statistics and numbers, and what was chosen for the charts."""

    blocks: list[str]
    chosen_blocks: list[str]
    classes: list[int]
    class_names: list[str]
    stats: dict[str, ClassStats]
    metrics: dict[str, dict[str, Any]]
    images_per_class: list[int]
    per_class_requested: int
    top1: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(self.images_per_class)


def make_eval_loader(dataset, batch_size: int, workers: int = 0):
    """An ordered (unshuffled) loader over ``dataset`` (:func:`senet.data.make_loader`)."""
    from senet.data import make_loader

    return make_loader(dataset, batch_size, shuffle=False, workers=workers)


def _progress(iterable, total: int | None, desc: str, enabled: bool):
    from senet.progress import progress

    return progress(iterable, total=total, desc=desc, unit="batch", enabled=enabled)


def analyze_excitations(
    model: nn.Module,
    dataset,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    classes: str | Sequence[str | int] | None = None,
    per_class: int = 50,
    blocks: str | Sequence[str] | None = None,
    batch_size: int = 128,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> ExcitationReport:
    """Record every SE block on ``per_class`` images of every class of ``dataset`` (a dataset of (image, label)).

    ``classes`` (names or indices) and ``blocks`` choose what the Fig. 6/7 charts show (defaults: four classes
    spread over the label range, :func:`~senet.analysis.selection.paper_blocks`); the per-block numbers cover
    every block and every class. Where a class holds fewer than ``per_class`` images, all of them are used and a
    note says how many. Invalid names raise ``ValueError`` listing the valid ones.
    """
    gates = channel_gates(model)  # raises ValueError for a model without SE blocks
    names = list(gates)
    chosen_blocks = resolve_blocks(blocks, names)
    class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    chosen_classes = resolve_classes(classes, class_names, num_classes)
    labels = dataset_labels(dataset)
    indices, used = balanced_indices(labels, per_class, num_classes)
    if not indices:
        raise ValueError("the dataset holds no images with labels in range")
    notes = []
    short = [(class_names[k], n) for k, n in enumerate(used) if n < per_class]
    if short:
        listing = ", ".join(f"{name}: {n}" for name, n in short[:10]) + (" ..." if len(short) > 10 else "")
        notes.append(f"--per-class {per_class} is more than the data holds for {len(short)} class(es); "
                     f"used all of them ({listing})")

    loader = make_eval_loader(torch.utils.data.Subset(dataset, indices), batch_size, workers)
    model = model.to(device)
    correct = 0
    with ExcitationRecorder(model, num_classes=num_classes) as rec:
        for images, targets in _progress(loader, len(loader), "excitations", progress):
            logits = rec.record(images.to(device, non_blocking=True), targets)
            if logits.dim() != 2 or logits.shape[1] != num_classes:
                raise SenetError(f"the model outputs {tuple(logits.shape[1:])} scores per image but the dataset has "
                                 f"{num_classes} classes: analyse it on the data it was trained for")
            correct += int((logits.argmax(1).cpu() == targets).sum())
    stats = rec.stats()
    return ExcitationReport(
        blocks=names, chosen_blocks=chosen_blocks, classes=chosen_classes, class_names=class_names,
        stats=stats, metrics={n: block_metrics(s) for n, s in stats.items()}, images_per_class=used,
        per_class_requested=per_class, top1=correct / len(indices), notes=notes,
    )


def compare_without_se(
    model: nn.Module,
    loader,
    stages: int | Sequence[int],
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` and ``remove_se(model, stages)`` on the same batches; report accuracy and parameter cost.

    Returns top-1 (and top-5 when there are more than 5 classes) of both models in percent, their difference
    (``*_change``: without minus with, in percentage points), parameter counts, and the SE parameter increase over
    the same network without any SE block (``se_increase_pct``), before and after - the paper's ~10% -> ~4%.
    """
    stages = [stages] if isinstance(stages, int) else list(stages)
    smaller = remove_se(model, stages=stages).to(device).eval()
    model = model.to(device).eval()
    hits: dict[str, dict[int, int]] = {"with": {}, "without": {}}
    seen, ks = 0, None
    with torch.inference_mode():
        for images, targets in _progress(loader, len(loader), f"drop SE stage {stages}", progress):
            images = images.to(device, non_blocking=True)
            for key, net in (("with", model), ("without", smaller)):
                logits = net(images)
                ks = ks or ((1, 5) if logits.shape[1] > 5 else (1,))
                for k, h in zip(ks, topk_correct(logits.float().cpu(), targets.cpu(), ks)):
                    hits[key][k] = hits[key].get(k, 0) + h
            seen += len(targets)
    if seen == 0:
        raise ValueError("no images to evaluate on")

    def cost(net: nn.Module) -> dict[str, Any]:
        total, attn = count_params(net), se_params(net)
        return {"params": total, "se_params": attn, "se_increase_pct": 100.0 * attn / max(total - attn, 1)}

    out: dict[str, Any] = {"stages": stages, "images": seen,
                           "removed_blocks": [n for n in named_se_blocks(model) if se_stage_of(n) in stages]}
    for key, net in (("with", model), ("without", smaller)):
        out[f"{key}_se"] = {**cost(net), **{f"top{k}": 100.0 * h / seen for k, h in hits[key].items()}}
    out["param_saving"] = out["with_se"]["params"] - out["without_se"]["params"]
    out["param_saving_pct"] = 100.0 * out["param_saving"] / out["with_se"]["params"]
    for k in ks:
        out[f"top{k}_change"] = out["without_se"][f"top{k}"] - out["with_se"][f"top{k}"]
    return out


@dataclass
class AnalysisOutput:
    """What :func:`run_analysis` produced: the report, the drop-SE comparison (or None) and the files written."""

    report: ExcitationReport
    drop_se: dict[str, Any] | None
    files: dict[str, Any]


def run_analysis(
    model: nn.Module,
    bundle,
    out_dir,
    *,
    split: str = "val",
    classes: str | Sequence[str | int] | None = None,
    per_class: int = 50,
    blocks: str | Sequence[str] | None = None,
    drop_se_stages: int | Sequence[int] | None = None,
    eval_images: int | None = None,
    batch_size: int = 128,
    workers: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    info: dict[str, Any] | None = None,
) -> AnalysisOutput:
    """``senet excite`` as a function: analyse ``bundle``'s ``split`` (a :class:`senet.data.DatasetBundle`), write
    ``excitation.json``/``.csv`` and the three charts into ``out_dir``, and optionally compare the model with the
    SE blocks of ``drop_se_stages`` removed on the first ``eval_images`` images of the split (default all)."""
    from senet.analysis.plots import write_charts
    from senet.analysis.report import write_report

    if split not in ("val", "train"):
        raise ValueError(f"split must be 'val' or 'train', got {split!r}")
    if eval_images is not None and eval_images < 1:
        raise ValueError(f"--eval-images must be at least 1, got {eval_images}")
    if eval_images is not None and not drop_se_stages:
        raise ValueError(f"--eval-images needs --drop-se-stage (it sets how many images the model without SE "
                         f"is compared on), got --eval-images {eval_images} alone")
    dataset = bundle.val if split == "val" else bundle.train
    saved = getattr(model, "senet_saved_config", None) or {}
    check_data_fits_model(
        saved.get("model") or getattr(model, "senet_config", None), num_classes=bundle.num_classes,
        in_chans=bundle.in_chans, model_source=f"the model in {(info or {}).get('model_dir') or 'memory'}",
        data_name=repr(getattr(bundle, "name", "the dataset")),
    )
    report = analyze_excitations(
        model, dataset, num_classes=bundle.num_classes, class_names=getattr(bundle, "class_names", None),
        classes=classes, per_class=per_class, blocks=blocks, batch_size=batch_size, workers=workers,
        device=device, progress=progress,
    )
    report.info.update({**(info or {}), "dataset": getattr(bundle, "name", None), "split": split})
    drop = None
    if drop_se_stages:
        if eval_images is not None and eval_images < len(dataset):
            dataset = torch.utils.data.Subset(dataset, range(eval_images))
        loader = make_eval_loader(dataset, batch_size, workers)
        drop = compare_without_se(model, loader, drop_se_stages, device=device, progress=progress)
    files = {**write_report(report, out_dir, drop), **write_charts(report, out_dir)}
    return AnalysisOutput(report, drop, files)
