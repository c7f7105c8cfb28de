"""``senet.train.compare``: several models, one recipe, several seeds - the paper's claim at a scale you can run.

Each (model, seed) pair is an ordinary run folder ``OUT/<model>/seed<k>`` (so ``senet evaluate`` works on it),
trained sequentially in this process. The summary goes to ``OUT/report.md``, ``OUT/summary.json`` and
``OUT/curves.png`` (validation top-1 and training loss per epoch, one line per model: the mean over seeds, with a
min..max band). Accuracy in the table is each run's selected model (``best/``, chosen on the validation split) on
the test split, which each run evaluates once at its end; the validation top-1 of that model is reported beside
it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senet.errors import ConfigError, SenetError
from senet.train.config import TrainConfig, make_config
from senet.train.significance import paired_difference
from senet.train.state import RUN_FILE, folder_holds_run

__all__ = ["ModelSummary", "compare"]


@dataclass
class ModelSummary:
    """One row of the comparison table."""

    model: str
    params: int
    se_params: int
    macs: int
    train_time: float  # mean seconds per run (all epochs, training and validation)
    images_per_s: float  # mean training throughput
    top1: list[float]  # each seed's selected model (best/ on validation) on the test split, evaluated once
    top5: list[float]
    runs: list[str]
    #: Validation top-1 of each seed's selected model (None: the run held out no validation part).
    val_top1: list[float | None] = field(default_factory=list)
    #: Where ``top1``/``top5`` come from: ``test``, or ``val`` for a dataset without a test split.
    split: str = "test"

    @property
    def val_top1_mean(self) -> float | None:
        values = [v for v in self.val_top1 if v is not None]
        return statistics.fmean(values) if values else None

    @property
    def top1_mean(self) -> float:
        return statistics.fmean(self.top1)

    @property
    def top1_std(self) -> float:
        return statistics.stdev(self.top1) if len(self.top1) > 1 else 0.0


def _parse_models(models: str | list[str] | tuple[str, ...]) -> list[str]:
    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models) if str(m).strip()]
    if not names:
        raise ConfigError("no models to compare: pass --models NAME,NAME (e.g. resnet20,se_resnet20)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--models lists a model twice: {', '.join(names)}")
    return names


def compare(
    models: str | list[str],
    recipe: TrainConfig | dict[str, Any],
    *,
    seeds: int = 1,
    out: str | Path = "runs/compare",
) -> dict[str, Any]:
    """Train every model in ``models`` with ``recipe`` for seeds ``recipe.seed .. recipe.seed + seeds - 1``.

    ``recipe`` holds the training options (data, epochs, lr, ...; not ``model``/``out``). With ``resume`` set,
    finished runs are kept and unfinished ones continue; with ``overwrite`` every run starts afresh; with neither,
    an ``out`` that already holds runs is refused. Returns the summary written to ``OUT/summary.json``.
    """
    from senet.complexity import model_complexity
    from senet.io import atomic_write_json, read_config
    from senet.models import create_model, get_model_builder
    from senet.train.api import train
    from senet.train.plots import plot_curves
    from senet.train.report import write_report

    names = _parse_models(models)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ConfigError(f"seeds must be an integer >= 1, got {seeds!r}")
    base = recipe if isinstance(recipe, TrainConfig) else make_config(dict(recipe))
    if base.model:
        raise ConfigError("compare takes --models, not a single model in the recipe")
    out = Path(out)
    for name in names:
        get_model_builder(name)  # unknown names fail here, before any training
    # Seed-major order: an interrupted comparison has finished pairs (seed k of every model) to compare.
    plans: list[tuple[str, int, TrainConfig]] = []
    for k in range(seeds):
        for name in names:
            run_dir = out / name / f"seed{base.seed + k}"
            resume = base.resume and (run_dir / RUN_FILE).exists()
            cfg = make_config({"model": name, "seed": base.seed + k, "out": str(run_dir), "resume": resume},
                              base=base)
            cfg.validate()
            if not resume and not base.overwrite and folder_holds_run(run_dir):
                raise SenetError(f"{run_dir} already holds a run: pass --resume to continue the comparison or "
                                 f"--overwrite to start it again")
            plans.append((name, base.seed + k, cfg))
    results: dict[str, list] = {name: [] for name in names}
    for i, (name, seed, cfg) in enumerate(plans, 1):
        print(f"[{i}/{len(plans)}] {name} seed {seed} -> {cfg.out_dir}", flush=True)
        results[name].append(train(cfg))

    dataset = read_config(results[names[0]][0].out)["dataset"]
    input_size = (int(dataset["in_chans"]), *_hw(dataset["image_size"]))
    rows = []
    for name in names:
        runs = results[name]
        stats = model_complexity(create_model(name, **runs[0].model_kwargs), input_size)
        scores, split = _scores(runs)
        rows.append(ModelSummary(
            model=name, params=stats["params"], se_params=stats["se_params"], macs=stats["macs"],
            train_time=statistics.fmean(r.train_time for r in runs),
            images_per_s=statistics.fmean(r.images_per_s for r in runs),
            top1=[t1 for t1, _ in scores], top5=[t5 for _, t5 in scores], runs=[str(r.out) for r in runs],
            val_top1=[r.best_top1 if r.best_epoch else None for r in runs], split=split))
    curves_png = plot_curves({name: [r.history for r in results[name]] for name in names}, out / "curves.png",
                             title=f"{base.data}: {', '.join(names)} ({base.epochs} epochs, {seeds} seed(s))")
    summary = {
        "data": base.data, "input_size": list(input_size), "epochs": base.epochs, "seeds": seeds,
        "recipe": {k: v for k, v in base.recipe().items() if k != "model"},
        "models": [{**row.__dict__, "top1_mean": row.top1_mean, "top1_std": row.top1_std,
                    "val_top1_mean": row.val_top1_mean} for row in rows],
        "curves_png": str(curves_png), "report_md": str(out / "report.md"),
        "differences": [_difference(row, rows[0]) for row in rows[1:]],
    }
    atomic_write_json(out / "summary.json", summary)
    write_report(out / "report.md", summary, rows)
    return summary


def _scores(runs: list[Any]) -> tuple[list[tuple[float, float]], str]:
    """(top-1, top-5) of each run's selected model on the test split; without a test split (an image folder with
    no ``test/``), the selected model's validation numbers, and the split says so."""
    if all(r.test is not None for r in runs):
        return [(r.test["top1"], r.test["top5"]) for r in runs], "test"
    chosen = [next((row for row in r.history if row["epoch"] == r.best_epoch), r.final) for r in runs]
    return [(row["val_top1"], row["val_top5"]) for row in chosen], "val"


def _hw(size: Any) -> tuple[int, int]:
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))


def _difference(row: ModelSummary, baseline: ModelSummary) -> dict[str, Any]:
    """``row`` against the first model, paired by seed (:func:`senet.train.significance.paired_difference`)."""
    diff = paired_difference(row.top1, baseline.top1)
    return {"model": row.model, "baseline": baseline.model, "split": row.split, "seeds": diff.n,
            "top1_difference": diff.mean, "ci95": None if diff.low is None else [diff.low, diff.high],
            "decided": diff.decided, "verdict": diff.verdict(row.model, baseline.model)}
