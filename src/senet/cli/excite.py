"""``senet excite DIR --data NAME --out OUT``: what each SE block of a saved model excites (paper section 7.2).

Writes ``excitation.json``/``excitation.csv`` (per-block class specificity, saturation, within-class spread),
``fig6_class_means.png``, ``fig7_within_class.png`` and ``depth.png`` into OUT. ``--drop-se-stage S`` also
evaluates the model with stage S's SE blocks replaced by identity on the whole split and reports the accuracy
change and the parameter saving.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from senet import checks
from senet.cli._common import Device

DESCRIPTION = """\
What each SE block of a saved model excites (paper section 7.2).

Writes excitation.json and excitation.csv (per-block class specificity, saturation, within-class spread),
fig6_class_means.png, fig7_within_class.png and depth.png into OUT. --drop-se-stage S also evaluates the model
with stage S's SE blocks replaced by identity on the whole split and reports the accuracy change and the
parameter saving.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("excite", help="per-class, per-depth excitation analysis of a saved SE model (Fig. 6/7)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", metavar="DIR", type=checks.Path("read"), help="saved model folder (senet train / senet.save_model)")
    p.add_argument("--data", metavar="NAME", help="dataset name (default: the one recorded in DIR/config.json)")
    p.add_argument("--data-dir", metavar="PATH", type=checks.Path("read-dir"), help="where the dataset files are")
    p.add_argument("--image-size", type=checks.Int(8, checks.IMAGE_SIDE_MAX), metavar="S",
                   help="input side (default: the size the run trained at)")
    p.add_argument("--split", choices=("val", "train"), default="val", help="which split to read (default val)")
    p.add_argument("--classes", metavar="A,B,...", help="classes to chart, by name or index (default: 4 spread out)")
    p.add_argument("--per-class", type=checks.Int(1, 100_000), default=50, metavar="N", help="images per class (default 50, as the paper)")
    p.add_argument("--blocks", metavar="SE_2_3,...",
                   help="blocks to chart (default: last block of each stage and all blocks of the last stage)")
    p.add_argument("--out", required=True, metavar="OUT", type=checks.Path("write-dir"), help="output folder for the charts and the report")
    p.add_argument("--json", action="store_true", help="print the per-block numbers as JSON on stdout")
    p.add_argument("--batch-size", type=checks.Int(1, 1 << 20), default=128, help="batch size (default 128)")
    p.add_argument("--workers", type=checks.Int(0, 1024), default=0, help="data-loading worker processes (default 0)")
    p.add_argument("--device", default=None, type=Device(), help="cpu, cuda, cuda:1, mps (default: cuda when available)")
    p.add_argument("--drop-se-stage", metavar="S", type=Stages(),
                   help="also evaluate without the SE blocks of stage(s) S (e.g. 5 or 4,5; paper numbering 2..5)")
    p.add_argument("--eval-images", type=checks.Int(1), metavar="N",
                   help="with --drop-se-stage: evaluate on the first N images of the split (default: all)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


class Stages(checks.Check):
    """Stage numbers in the paper's numbering 2..5, comma-separated (``5`` or ``4,5``)."""

    kind = "int-list"
    item = checks.Int(2, 5)

    def describe(self) -> str:
        return "stage numbers 2..5 such as 5 or 4,5"

    def __call__(self, value: Any) -> list[int]:
        parts = value.split(",") if isinstance(value, str) else []
        if not parts or not all(p.strip() for p in parts):
            raise self.fail(value)
        try:
            return [self.item(p) for p in parts]
        except checks.ConfigError:
            raise self.fail(value) from None


def run(args: argparse.Namespace) -> int:

    from senet.analysis import format_depth_table, run_analysis
    from senet.analysis.recorder import channel_gates
    from senet.analysis.report import report_rows
    from senet.data import load_dataset
    from senet.io import load_model, saved_dataset_name

    if args.eval_images is not None and not args.drop_se_stage:
        raise ValueError("--eval-images needs --drop-se-stage")
    from senet.train.evaluation import torch_device

    device = torch_device(args.device)  # an absent CUDA GPU is one line, before any data is read
    model = load_model(args.model_dir)
    channel_gates(model)  # fail fast (ValueError) when the model has no SE blocks, before reading any data
    saved = getattr(model, "senet_saved_config", {}) or {}
    data_name = saved_dataset_name(saved, args.data, source=f"{args.model_dir}/config.json")
    from senet.train.evaluation import saved_data_options

    options = saved_data_options(saved, args.data)  # the run's held-out validation part, at its input size
    if args.image_size is not None:
        options["image_size"] = args.image_size
    bundle = load_dataset(data_name, data_dir=args.data_dir, augment=False, **options)  # analysis never augments
    if args.split == "val":
        bundle.split("val")  # a run that held out no validation part (val_split=0) has none: say so in one line
    result = run_analysis(
        model, bundle, args.out, split=args.split, classes=args.classes, per_class=args.per_class,
        blocks=args.blocks, drop_se_stages=args.drop_se_stage, eval_images=args.eval_images,
        batch_size=args.batch_size, workers=args.workers, device=device,
        progress=not args.no_progress and sys.stderr.isatty(),
        info={"model_dir": str(args.model_dir), "model": saved.get("model")},
    )
    report, drop = result.report, result.drop_se

    log = sys.stderr if args.json else sys.stdout
    for note in report.notes:
        print(f"note: {note}", file=log)
    if args.json:
        print(json.dumps({"blocks": report_rows(report), "drop_se": drop}, indent=2))
    else:
        print(f"{report.images} images of {data_name}/{args.split} ({args.per_class} per class requested); "
              f"top-1 on them {100 * report.top1:.2f}%")
        print(format_depth_table(report))
        if drop is not None:
            _print_drop(drop)
    for key, path in result.files.items():
        print(f"wrote {key}: {path}", file=log)
    return 0


def _print_drop(drop: dict) -> None:
    w, wo = drop["with_se"], drop["without_se"]
    print(f"without the SE blocks of stage {','.join(map(str, drop['stages']))} "
          f"({len(drop['removed_blocks'])} blocks, {drop['images']} images):")
    print(f"  top-1 {w['top1']:.2f}% -> {wo['top1']:.2f}% ({drop['top1_change']:+.2f} points)")
    if "top5_change" in drop:
        print(f"  top-5 {w['top5']:.2f}% -> {wo['top5']:.2f}% ({drop['top5_change']:+.2f} points)")
    print(f"  parameters {w['params']:,} -> {wo['params']:,} (-{drop['param_saving']:,}, "
          f"-{drop['param_saving_pct']:.2f}%); SE increase {w['se_increase_pct']:.1f}% -> {wo['se_increase_pct']:.1f}%")
