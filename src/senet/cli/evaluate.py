"""``senet evaluate DIR``: top-1, top-5, loss, per-class accuracy and a confusion-matrix PNG of a saved model."""

from __future__ import annotations

import argparse
import json

from senet import checks
from senet.cli._common import Device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, loss, per-class accuracy and confusion matrix of a saved model",
                       description="Evaluate a model folder (written by senet train or senet.save_model) on the "
                                   "validation split (default; the part the run held out) or the test split. Files go "
                                   "to DIR/eval_<data>/ or DIR/eval_<data>_test/ (metrics.json, confusion.png).")
    p.add_argument("model", metavar="DIR", type=checks.Path("read"), help="model folder, model.safetensors or config.json")
    p.add_argument("--data", help="dataset name (default: the one the model was trained on)")
    p.add_argument("--data-dir", type=checks.Path("write-dir"), help="folder holding the dataset files")
    p.add_argument("--download", action="store_true", help="fetch the dataset if it is missing")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="val: the split the run selected its model on (default); test: the final report's split")
    p.add_argument("--val-subset", "--subset", type=checks.Int(1), metavar="N",
                   help="evaluate on a fixed random N images")
    p.add_argument("--image-size", type=checks.Int(8, checks.IMAGE_SIDE_MAX), metavar="S",
                   help="input side (default: the size the run trained at)")
    p.add_argument("--batch-size", type=checks.Int(1, 1 << 20), default=256, help="batch size (default 256)")
    p.add_argument("--workers", type=checks.Int(0, 1024), default=0, help="data loader worker processes (default 0)")
    p.add_argument("--device", type=Device(), help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model before evaluating")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold BatchNorm into the preceding convolutions first (faster; same results to rounding)")
    p.add_argument("--out", metavar="DIR", type=checks.Path("write-dir"), help="where to write metrics.json and confusion.png")
    p.add_argument("--json", action="store_true", help="print a JSON object (top1, top5, loss, per_class, ...)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from senet.train import evaluate

    result = evaluate(args.model, args.data, split=args.split, image_size=args.image_size, data_dir=args.data_dir,
                      download=args.download,
                      val_subset=args.val_subset, batch_size=args.batch_size, workers=args.workers, out=args.out,
                      progress=not args.json, device=args.device, compile=args.compile,
                      fold_bn=args.fold_bn)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "confusion"}))
        return 0
    print(f"{result['model']} on {result['data']}, {result['split']} split ({result['count']} images)")
    print(f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  loss {result['loss']:.4f}")
    width = max((len(name) for name in result["per_class"]), default=5)
    print("per-class accuracy:")
    for name, acc in result["per_class"].items():
        print(f"  {name:<{width}}  {'n/a' if acc is None else f'{acc:.4f}'}")
    print(f"confusion matrix: {result['confusion_png']}; metrics: {result['metrics_json']}")
    return 0
