"""From the excitation analysis to a smaller model: choose SE blocks to remove, check each step, save the result.

Section 7.2 of arXiv 1709.01507 finds blocks that do little (SE_5_x of SE-ResNet-50 saturate towards 1) and
removes them at almost no cost. :func:`greedy_prune` generalises this: candidates are ranked by the analysis's own
statistics (:func:`rank_blocks`: blocks whose excitation neither depends on the class nor varies between images
act as a constant, so a constant can replace them), and each is removed in turn, kept only while the accuracy on
held-out images stays within the budget. :func:`prune_run` does it for a run folder and writes a new one.

Three disjoint sets of images play three roles: the run's training images (outside the held-out part) give the
statistics and the mean excitations; the held-out validation images decide each step; the test split is
evaluated once at the end, for the report, and chooses nothing.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from senet.analysis.constant_fold import FoldError
from senet.analysis.surgery import REPLACE_MODES, mean_excitations, remove_se
from senet.errors import SenetError

__all__ = ["PruneResult", "PruneStep", "greedy_prune", "heldout_split", "prune_run", "rank_blocks", "top1"]

#: Largest loss of validation top-1 (percentage points) when the blocks are chosen automatically.
DEFAULT_MAX_DROP = 0.3
#: Images of each class from the training split used for the statistics and the mean excitations.
FIT_PER_CLASS = 100


def heldout_split(bundle: Any) -> tuple[Dataset, Dataset]:
    """(training images, held-out validation images) of a run's data ``bundle``, loaded with the run's own
    evaluation protocol (:func:`senet.train.evaluation.saved_data_options`): for Fashion-MNIST, MNIST and CIFAR the
    seeded part of the training files the run held out (``val_split``), for image folders their ``val/``. The
    test split is never a validation set; a run that held nothing out (``val_split=0``) cannot be pruned safely,
    so that is a ConfigError naming it.
    """
    return bundle.train, bundle.split("val")

def rank_blocks(metrics: dict[str, dict[str, float]]) -> list[str]:
    """Block names, the best candidates for a constant first: low class specificity and low within-class spread.

    Each block gets its rank on the two statistics (:func:`senet.analysis.block_metrics`); blocks are ordered by
    the sum of both ranks, ties broken by the later block first (deeper blocks are the paper's candidates).
    """
    names = list(metrics)

    def ranks(key: str) -> dict[str, int]:
        def value(n: str) -> float:
            v = metrics[n].get(key, math.nan)
            return math.inf if v is None or math.isnan(v) else v
        return {n: i for i, n in enumerate(sorted(names, key=value))}

    spec, spread = ranks("class_specificity"), ranks("within_class_std")
    depth = {n: i for i, n in enumerate(names)}
    return sorted(names, key=lambda n: (spec[n] + spread[n], -depth[n]))


def top1(model: nn.Module, loader, device: torch.device | str = "cpu", *, channels_last: bool = False) -> float:
    """Top-1 accuracy of ``model`` on ``loader``, in percent."""
    model.eval()
    correct = seen = 0
    with torch.inference_mode():
        for images, labels in loader:
            images = images.to(device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            correct += int((model(images).argmax(1).cpu() == labels).sum())
            seen += len(labels)
    if seen == 0:
        raise ValueError("no images to evaluate on")
    return 100.0 * correct / seen


@dataclass
class PruneStep:
    """One tried removal: the block, the validation top-1 (percent) with it removed too, and whether it stayed."""

    block: str
    val_top1: float | None
    kept: bool
    note: str = ""


@dataclass
class PruneResult:
    """What :func:`greedy_prune` did: the smaller model, the blocks removed in order, every step tried."""

    model: nn.Module
    removed: list[str]
    steps: list[PruneStep]
    val_top1_before: float
    val_top1_after: float
    order: list[str] = field(default_factory=list)


def greedy_prune(
    model: nn.Module,
    val_loader,
    *,
    order: Sequence[str],
    replace: str = "mean",
    means: dict[str, torch.Tensor] | None = None,
    max_drop: float | None = DEFAULT_MAX_DROP,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    log=None,
) -> PruneResult:
    """Remove the blocks of ``order`` one at a time, keeping each removal while the validation top-1 stays within
    ``max_drop`` percentage points of the original model's; ``max_drop=None`` removes all of them (blocks chosen
    by hand). ``means`` are the constants for ``replace="mean"`` (:func:`~senet.analysis.surgery.mean_excitations`
    of the original model). A block whose constant cannot be folded is skipped with a note when a budget is set,
    and raises otherwise."""
    if replace not in REPLACE_MODES:
        raise ValueError(f"unknown replace {replace!r}; choose one of {', '.join(REPLACE_MODES)}")
    if max_drop is not None and max_drop < 0:
        raise ValueError(f"--max-drop must be 0 or more (percentage points), got {max_drop}")
    log = log or (lambda _msg: None)
    before = top1(model, val_loader, device, channels_last=channels_last)
    log(f"validation top-1 with every SE block: {before:.2f}%")
    current, removed, steps = model, [], []
    example = next(iter(val_loader))[0][:2].to(device)
    for block in order:
        try:
            candidate = remove_se(model, blocks=[*removed, block], replace=replace, means=means,
                                  example_input=example)
        except FoldError as exc:
            if max_drop is None:
                raise
            steps.append(PruneStep(block, None, False, str(exc)))
            log(f"  {block}: skipped ({exc})")
            continue
        if channels_last:
            candidate = candidate.to(memory_format=torch.channels_last)
        acc = top1(candidate, val_loader, device, channels_last=channels_last)
        kept = max_drop is None or before - acc <= max_drop + 1e-9
        steps.append(PruneStep(block, acc, kept))
        log(f"  {block}: validation top-1 {acc:.2f}% ({acc - before:+.2f}) -> {'removed' if kept else 'kept'}")
        if kept:
            current, removed = candidate, [*removed, block]
    after = before if not removed else next(s.val_top1 for s in reversed(steps) if s.kept)
    return PruneResult(current, removed, steps, before, after, list(order))


def _run_bundle(doc: dict, data: str | None, data_dir: str | None):
    from senet.data import load_dataset
    from senet.io import saved_dataset_name
    from senet.train.evaluation import saved_data_options

    name = saved_dataset_name(doc, data)
    train_cfg = doc.get("train_config") or {}
    options = saved_data_options(doc, data)  # the run's held-out validation part and test split, at its input size
    return load_dataset(name, data_dir=data_dir or train_cfg.get("data_dir"), augment=False, **options), name


def _balanced(dataset: Dataset, per_class: int, num_classes: int) -> Dataset:
    from senet.analysis.selection import balanced_indices, dataset_labels

    indices, _ = balanced_indices(dataset_labels(dataset), per_class, num_classes)
    return Subset(dataset, indices)


def prune_run(
    run: str | Path,
    out: str | Path,
    *,
    blocks: Sequence[str] | None = None,
    replace: str = "mean",
    max_drop: float | None = None,
    data: str | None = None,
    data_dir: str | None = None,
    batch_size: int = 256,
    workers: int = 0,
    fit_per_class: int = FIT_PER_CLASS,
    device: str | None = None,
    latency_repeats: int = 7,
    overwrite: bool = False,
    log=print,
) -> dict[str, Any]:
    """``senet prune RUN --out DIR`` as a function: prune the model of run folder ``run`` and write a run folder
    (``model.safetensors``, ``config.json``: ``senet evaluate``/``export`` read it) and ``report.md``/
    ``report.json`` into ``out``. Returns the report.

    Without ``blocks`` the candidates come from :func:`rank_blocks` on statistics of ``fit_per_class`` training
    images per class and :func:`greedy_prune` keeps those within ``max_drop`` points of validation top-1
    (default :data:`DEFAULT_MAX_DROP`). With ``blocks`` those are the candidates, in that order: all are removed,
    or, when ``max_drop`` is given, those within the budget. The constants of ``replace="mean"`` come from the
    same training images as the statistics.
    """
    from senet.analysis.pipeline import analyze_excitations, make_eval_loader
    from senet.analysis.prune_report import cost_of, measure_latency, write_prune_report
    from senet.io import WEIGHTS_FILE, check_data_fits_model, load_model, read_config, save_model
    from senet.train.evaluation import torch_device

    run, out = Path(run), Path(out)
    if replace not in REPLACE_MODES:
        raise ValueError(f"unknown --replace {replace!r}; choose one of {', '.join(REPLACE_MODES)}")
    if max_drop is not None and max_drop < 0:
        raise ValueError(f"--max-drop must be 0 or more (percentage points), got {max_drop}")
    if out.resolve() == (run if run.is_dir() else run.parent).resolve():
        raise SenetError(f"--out {out} is the run folder itself: write the pruned model elsewhere")
    if (out / WEIGHTS_FILE).exists() and not overwrite:
        raise SenetError(f"{out} already holds a model: pass --overwrite to replace it, or choose another --out")
    doc = read_config(run)
    device = torch_device(device)
    model = load_model(run, map_location=device)
    bundle, data_name = _run_bundle(doc, data, data_dir)
    check_data_fits_model(doc["model"], num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                          model_source=f"the model in {run}", data_name=repr(data_name))
    train_cfg = doc.get("train_config") or {}
    channels_last = bool(train_cfg.get("channels_last", False))
    fit_set, val_set = heldout_split(bundle)
    test_set = bundle.test  # None for an image folder without test/: the report then has no test row
    fit_set = _balanced(fit_set, fit_per_class, bundle.num_classes)
    val_loader = make_eval_loader(val_set, batch_size, workers)
    log(f"{run}: {len(fit_set)} training images for statistics and constants, {len(val_set)} held-out "
        f"validation images")

    report = analyze_excitations(model, fit_set, num_classes=bundle.num_classes, per_class=fit_per_class,
                                 batch_size=batch_size, workers=workers, device=device)
    available = report.blocks
    if blocks:
        unknown = [b for b in blocks if b not in available]
        if unknown:
            raise ValueError(f"unknown SE block(s) {', '.join(unknown)}; this model has {', '.join(available)}")
        order, budget = list(dict.fromkeys(blocks)), max_drop
    else:
        order, budget = rank_blocks(report.metrics), DEFAULT_MAX_DROP if max_drop is None else max_drop
    log(f"candidates, in order: {', '.join(order)}")
    means = None
    if replace == "mean":
        means = mean_excitations(model, make_eval_loader(fit_set, batch_size, workers), order)
    result = greedy_prune(model, val_loader, order=order, replace=replace, means=means, max_drop=budget,
                          device=device, channels_last=channels_last, log=log)
    pruned = result.model

    test = None
    if test_set is not None:
        test_loader = make_eval_loader(test_set, batch_size, workers)
        test = {key: top1(m, test_loader, device, channels_last=channels_last)
                for key, m in (("before", model), ("after", pruned))}
    input_size = (bundle.in_chans, *_hw(bundle.image_size))
    example = next(iter(val_loader))[0][:min(batch_size, 64)].to(device)
    latency = measure_latency(model, pruned, example, repeats=latency_repeats, channels_last=channels_last)

    if out.exists() and overwrite:
        for name in (WEIGHTS_FILE, "config.json", "report.md", "report.json"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "best", ignore_errors=True)
    summary = {
        "run": str(run), "out": str(out), "model": doc["model"]["name"], "data": data_name,
        "replace": replace, "selection": "by hand (--blocks)" if blocks else "ranked by the analysis, greedy",
        "max_drop": budget, "order": order, "removed": result.removed,
        "steps": [s.__dict__ for s in result.steps],
        "images": {"statistics": len(fit_set), "validation": len(val_set), "test": None if test_set is None else len(test_set)},
        "block_metrics": {n: report.metrics[n] for n in available},
        "cost": {"before": cost_of(model, input_size), "after": cost_of(pruned, input_size)},
        "val_top1": {"before": result.val_top1_before, "after": result.val_top1_after},
        "test_top1": test, "latency": latency,
    }
    extra = {k: v for k, v in doc.items() if k not in ("format", "version", "model", "metrics", "epoch", "best")}
    pruned_doc = {"from": str(run), "replace": replace, "removed": result.removed}
    save_model(pruned.to("cpu"), out, extra={**extra, "pruned": pruned_doc})
    write_prune_report(summary, out)
    return summary


def _hw(size: Any) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
