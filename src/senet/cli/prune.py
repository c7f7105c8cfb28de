"""senet prune RUN --out DIR: remove the SE blocks that do little, checked on held-out images (section 7.2).

Without --blocks, the blocks are ranked by the excitation analysis (low class specificity and low within-class
spread first) and removed one at a time, each kept only while the validation top-1 (the run's held-out
validation images) stays within --max-drop percentage points of the original. --replace mean (default) puts each
block's mean excitation per channel in its place and folds it into the preceding layer; --replace identity uses
s = 1. DIR becomes a run folder (model.safetensors, config.json) that senet evaluate and senet export read, with
report.md and report.json: blocks removed, parameters and multiply-adds, forward time, validation and test top-1
before and after (the test split is evaluated once, at the end, and chooses nothing).
"""

from __future__ import annotations

import argparse

from senet import checks
from senet.cli._common import Device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="remove SE blocks chosen by the excitation analysis within an accuracy budget",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", type=checks.Path("read"), help="run folder of the SE model (senet train / senet.save_model)")
    p.add_argument("--out", required=True, metavar="DIR", type=checks.Path("write-dir"), help="folder for the pruned model and the report")
    p.add_argument("--max-drop", type=checks.Float(0, 100), metavar="POINTS",
                   help="largest loss of validation top-1 allowed, in percentage points (default 0.3; with --blocks: "
                        "no budget unless given)")
    p.add_argument("--blocks", nargs="+", metavar="SE_4_1", type=checks.Text("an SE block name"),
                   help="candidates chosen by hand, tried in this order: all removed, or with --max-drop only those "
                        "within the budget")
    p.add_argument("--replace", choices=("mean", "identity"), default="mean",
                   help="what replaces a removed block: its mean excitation, folded away (default), or identity")
    p.add_argument("--data", metavar="NAME", type=checks.Text("a dataset name"), help="dataset (default: the one the run was trained on)")
    p.add_argument("--data-dir", metavar="PATH", type=checks.Path("read-dir"), help="where the dataset files are")
    p.add_argument("--batch-size", type=checks.Int(1, 1 << 20), default=256, help="batch size (default 256)")
    p.add_argument("--workers", type=checks.Int(0, 1024), default=0, help="data-loading worker processes (default 0)")
    p.add_argument("--device", type=Device(), help="cpu, cuda, cuda:1, mps (default: cuda when available)")
    p.add_argument("--overwrite", action="store_true", help="replace a pruned model already in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senet.analysis.prune import prune_run

    summary = prune_run(args.run, args.out, blocks=args.blocks, replace=args.replace, max_drop=args.max_drop,
                        data=args.data, data_dir=args.data_dir, batch_size=args.batch_size, workers=args.workers,
                        device=args.device, overwrite=args.overwrite)
    cost, lat = summary["cost"], summary["latency"]
    print(f"removed {len(summary['removed'])} SE block(s): {', '.join(summary['removed']) or 'none'}")
    print(f"params {cost['before']['params']:,} -> {cost['after']['params']:,}; multiply-adds "
          f"{cost['before']['macs']:,} -> {cost['after']['macs']:,}; forward time x{lat['ratio']:.3f}")
    test = summary["test_top1"]
    shown_test = "no test split" if test is None else f"test top-1 {test['before']:.2f}% -> {test['after']:.2f}%"
    print(f"validation top-1 {summary['val_top1']['before']:.2f}% -> {summary['val_top1']['after']:.2f}%; "
          f"{shown_test}")
    print(f"model: {summary['out']}; report: {summary['out']}/report.md")
    return 0
