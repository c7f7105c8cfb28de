"""Time to accuracy: train a list of recipes and report, for each, when its validation top-1 first reached the
targets, and the test top-1 of the model the protocol selects.

A grid file (``--grid``, default ``benchmarks/fmnist_recipes.yaml``) holds a ``base`` recipe and a list of
``recipes``, each a ``name`` and the keys it changes; ``--config FILE`` runs one ``senet train`` config file instead
(named after the file). Every recipe is validated before any training starts; a recipe that fails while training
is reported in the table and the others go on (a worker killed outright, by SIGKILL or a crash, leaves the
pool waiting: stop the search with Ctrl-C, which ends every worker).
Each recipe runs through :func:`senet.train.train` in its own process (``--parallel`` at a time, each with
``--threads`` torch threads), and its ``metrics.csv`` gives the epoch-by-epoch validation top-1 (the held-out part
of the training set) and epoch times; ``test.json`` the test top-1 of its selected model (``best/``), evaluated once.

Reported per recipe: the first epoch at or above each ``--targets`` accuracy, the seconds of training plus
evaluation up to that epoch, the whole run's wall time (model build, data, checkpoints included), the final and
best validation top-1, and the selected model's test top-1. Accuracy does not depend on the machine, so a GPU can search many recipes fast (``--accelerator cuda
--parallel 6``); the minutes that count are measured on the target machine with ``--parallel 1``.

    python benchmarks/time_to_accuracy.py --only se20_e10                  # one recipe, here
    python benchmarks/time_to_accuracy.py --accelerator cuda --parallel 6  # the whole grid on a GPU
    python benchmarks/time_to_accuracy.py --config fmnist_se_94              # one bundled recipe, by name
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import format_table

ROOT = Path(__file__).resolve().parent.parent


def load_grid(grid: Path, only: list[str] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The grid file's base recipe and its recipes (each a mapping with a unique ``name``), restricted to ``only``."""
    import yaml

    try:
        doc = yaml.safe_load(grid.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SystemExit(f"{grid} is not valid YAML ({str(exc).splitlines()[0]})") from exc
    recipes = doc.get("recipes") if isinstance(doc, dict) else None
    base = doc.get("base", {}) if isinstance(doc, dict) else {}
    if not isinstance(base, dict):
        raise SystemExit(f"{grid}: 'base:' must be a mapping of training options")
    if not isinstance(recipes, list) or not all(isinstance(r, dict) and r.get("name") for r in recipes):
        raise SystemExit(f"{grid}: expected 'recipes:' holding a list of mappings, each with a 'name'")
    names = [r["name"] for r in recipes]
    if len(set(names)) != len(names):
        raise SystemExit(f"{grid}: recipe names must be unique")
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise SystemExit(f"{grid} has no recipe named {', '.join(missing)}; it has {', '.join(names)}")
        recipes = [r for r in recipes if r["name"] in only]
    return base, recipes


def recipe_keys(base: dict[str, Any], recipe: dict[str, Any], overrides: dict[str, Any], out_root: str,
                overwrite: bool) -> dict[str, Any]:
    """The full ``senet train`` options of one recipe: base, then the recipe's changes, then the overrides."""
    keys = dict(base)
    keys.update({k: v for k, v in recipe.items() if k != "name"})
    keys.update(overrides)
    keys.update(out=str(Path(out_root) / recipe["name"]), overwrite=overwrite, progress=False)
    return keys


def run_recipe(name: str, keys: dict[str, Any], threads: int) -> dict:
    """Train one recipe (in a worker process); return its per-epoch history and wall time, or its error."""
    import torch

    from senet.train import train

    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        train(keys)
    except Exception as exc:  # noqa: BLE001 - one failed recipe (bad data path, out of memory) must not end the search
        return {"name": name, "recipe": keys, "error": f"{type(exc).__name__}: {exc}", "history": []}
    wall = time.perf_counter() - start
    with open(Path(keys["out"]) / "metrics.csv", newline="") as fh:
        history = [{k: float(v) if v != "" else None for k, v in row.items()} for row in csv.DictReader(fh)]
    test_file = Path(keys["out"]) / "test.json"
    test = json.loads(test_file.read_text())["top1"] if test_file.is_file() else None
    return {"name": name, "recipe": keys, "wall_s": wall, "history": history, "test_top1": test}


def _run_job(job: tuple) -> dict:
    return run_recipe(*job)


def summarise(result: dict, targets: list[float]) -> list[object]:
    """One table row: per target the first epoch reaching it and the seconds of epochs up to it."""
    hist = result["history"]
    if "error" in result:
        return [result["name"], "failed: " + result["error"].splitlines()[0][:80]] + ["-"] * (2 * len(targets) + 4)
    row: list[object] = [result["name"], len(hist)]
    for target in targets:
        hit = next((i for i, h in enumerate(hist) if (h["val_top1"] or 0.0) >= target), None)
        if hit is None:
            row += ["-", "-"]
        else:
            row += [hit + 1, f"{sum(h['epoch_time'] for h in hist[: hit + 1]) / 60:.2f}"]
    vals = [h["val_top1"] for h in hist if h["val_top1"] is not None]
    test = result.get("test_top1")
    row += [f"{result['wall_s'] / 60:.2f}", f"{100 * vals[-1]:.2f}" if vals else "-",
            f"{100 * max(vals):.2f}" if vals else "-", "-" if test is None else f"{100 * test:.2f}"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="run this `senet train` YAML file (one recipe) instead of the grid")
    parser.add_argument("--grid", default=str(ROOT / "benchmarks" / "fmnist_recipes.yaml"), help="recipes to try")
    parser.add_argument("--only", nargs="+", help="run only these recipe names")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.93, 0.94], help="top-1 targets (fractions)")
    parser.add_argument("--parallel", type=int, default=1, help="recipes trained at once (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per recipe (default 2)")
    parser.add_argument("--accelerator", help="override the recipes' accelerator (e.g. cuda)")
    parser.add_argument("--data-dir", help="override the recipes' data_dir")
    parser.add_argument("--out", help="folder for the runs (default: a temporary folder, removed at the end)")
    parser.add_argument("--overwrite", action="store_true", help="replace runs already in --out")
    parser.add_argument("--json", help="also write every recipe's history to this JSON file")
    args = parser.parse_args(argv)
    if args.parallel < 1 or args.threads < 1:
        raise SystemExit("--parallel and --threads must be >= 1")
    if not all(0 < t <= 1 for t in args.targets):
        raise SystemExit("--targets are fractions in (0, 1], e.g. 0.93")

    from senet.errors import ConfigError
    from senet.train.config import load_config_file, make_config

    try:
        if args.config:
            if args.only:
                raise SystemExit("--only picks recipes of a grid; with --config the config file is the one recipe")
            base, recipes = load_config_file(args.config)[0], [{"name": Path(args.config).stem}]
        else:
            base, recipes = load_grid(Path(args.grid), args.only)
    except (OSError, ConfigError) as exc:
        raise SystemExit(f"time_to_accuracy: {exc}") from exc
    overrides = {k: v for k, v in (("accelerator", args.accelerator), ("data_dir", args.data_dir)) if v}
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="senet_tta_")
    out_root = args.out or tmp.name
    jobs = []
    for r in recipes:
        keys = recipe_keys(base, r, overrides, out_root, overwrite=args.overwrite or tmp is not None)
        try:
            make_config(keys).validate()
        except ConfigError as exc:
            raise SystemExit(f"time_to_accuracy: recipe {r['name']}: {exc}") from exc
        jobs.append((r["name"], keys, args.threads))
    results = []
    try:
        # A Pool (not an executor): on Ctrl-C, SIGTERM or an error, terminate() stops the runs still training.
        pool = get_context("spawn").Pool(args.parallel, maxtasksperchild=1)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            for result in pool.imap_unordered(_run_job, jobs):
                results.append(result)
                if "error" in result:
                    print(f"{result['name']}: FAILED: {result['error']}", flush=True)
                else:
                    accs = " ".join("-" if h["val_top1"] is None else f"{100 * h['val_top1']:.2f}"
                                    for h in result["history"])
                    print(f"{result['name']}: {result['wall_s'] / 60:.1f} min; val top-1 by epoch {accs}", flush=True)
                if args.json:  # after every recipe, so a search cut short keeps what it finished
                    Path(args.json).write_text(json.dumps(results, indent=1))
        finally:
            pool.terminate()
            pool.join()
    finally:
        if tmp is not None:
            tmp.cleanup()
    order = {r["name"]: i for i, r in enumerate(recipes)}
    results.sort(key=lambda r: order[r["name"]])
    header = ["recipe", "epochs"]
    for t in args.targets:
        header += [f"epoch >= {100 * t:g}%", f"min to {100 * t:g}%"]
    header += ["wall min", "final val top-1", "best val top-1", "test top-1 (selected)"]
    print(format_table(header, [summarise(r, args.targets) for r in results]))
    print("min to X% = training + evaluation time of the epochs up to the first at X%; wall min = the whole run.")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
