"""Whole-model cost of SE: se_resnet50 vs resnet50 (ours), and ours vs timm's seresnet50, in one process.

Two comparisons, each interleaved run by run so both sides see the same machine noise, fp32 (or bf16 autocast with
``--dtype bf16``), both memory formats:

1. SE overhead: ``se_resnet50`` vs ``resnet50`` with the same stride placement (the paper's, stride on the first
   1x1), inference at each ``--batch-sizes``, 224x224, and one SGD training step at ``--train-batch``. Target
   <= 2% in inference (the paper: +1.8% for one image on a CPU); the paper reports +10% training time on GPUs.
2. Ours vs timm: ``se_resnet50(stride_in_1x1=False)`` vs ``timm.create_model("seresnet50")`` (both stride on the
   3x3, the same parameters), inference throughput (target >= 1.10x) and one SGD training step at
   ``--train-batch`` (target >= 1.0x).

    python benchmarks/bench_models.py                         # batch 1 and 32, 5 repeats
    python benchmarks/bench_models.py --batch-sizes 1 --repeats 9 --formats channels_last
    python benchmarks/bench_models.py --skip-timm             # only the SE overhead
    python benchmarks/bench_models.py --fold-bn --skip-train  # also ours with BN folded into the convs (inference)
    python benchmarks/bench_models.py --device cuda --dtype bf16 --batch-sizes 1 32 256 --train-batch 128
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (
    FORMATS,
    add_common_args,
    add_formats_arg,
    apply_common_args,
    autocast,
    describe_machine,
    format_table,
    interleaved,
    median_ms,
    paired_ratio,
    sgd_step_fn,
)


def inference_fn(model: nn.Module, x: torch.Tensor, args: argparse.Namespace) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad(), autocast(args):
            return model(x)

    return run


def prepare(model: nn.Module, fmt: torch.memory_format, train: bool, args: argparse.Namespace) -> nn.Module:
    model = model.train(train).to(args.device, memory_format=fmt)
    return torch.compile(model) if args.compile else model


def _folded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    import senet

    return lambda: senet.fold_batchnorm(build())[0]


def compare(
    title: str,
    builders: dict[str, Callable[[], nn.Module]],
    batch: int,
    train: bool,
    args: argparse.Namespace,
) -> list[list]:
    """Time every model in ``builders`` on the same input; one row per (format, model), ratio to the first."""
    rows = []
    for fmt_name in args.formats:
        fmt = FORMATS[fmt_name]
        torch.manual_seed(0)
        x = torch.randn(batch, 3, 224, 224, device=args.device).contiguous(memory_format=fmt)
        y = torch.randint(0, 1000, (batch,), device=args.device)
        fns = {}
        for name, build in builders.items():
            model = prepare(build(), fmt, train, args)
            fns[name] = sgd_step_fn(model, x, y, args, lr=1e-4) if train else inference_fn(model, x, args)
        times = interleaved(fns, args.repeats, args.warmup, sync=args.sync)
        base_name = next(iter(builders))
        for name in builders:
            t = median_ms(times[name])
            ratio = paired_ratio(times[name], times[base_name])
            rows.append([title, fmt_name, batch, name, t, ratio, 1.0 / ratio])
            print(f"  {title}, {fmt_name}, batch {batch}: {name} {t:.1f} ms, {ratio:.3f}x the first", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32], help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=8, help="batch of the timed training step (default 8)")
    add_formats_arg(parser)
    parser.add_argument("--skip-timm", action="store_true", help="only the SE-overhead comparison")
    parser.add_argument("--skip-overhead", action="store_true", help="only the comparison with timm")
    parser.add_argument("--skip-train", action="store_true", help="no training-step comparisons")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model first (slow to start)")
    parser.add_argument("--fold-bn", action="store_true",
                        help="inference comparisons also time our models with BN folded (senet.fold_batchnorm)")
    add_common_args(parser, repeats=5, warmup=1)
    args = parser.parse_args(argv)
    apply_common_args(args)

    import senet

    precision = "bf16 autocast" if args.dtype == "bf16" else "fp32"
    print(f"SE-ResNet-50 cost, 224x224 {precision} on {args.device}" + (", torch.compile" if args.compile else ", eager"))
    print(describe_machine(args.device))
    rows: list[list] = []
    if not args.skip_overhead:
        paper = {
            "resnet50 (ours)": lambda: senet.create_model("resnet50"),
            "se_resnet50 (ours)": lambda: senet.create_model("se_resnet50"),
        }
        for batch in args.batch_sizes:
            rows += compare("SE overhead, inference", paper, batch, False, args)
            if args.fold_bn:
                folded = {f"{k}, BN folded": _folded(v) for k, v in paper.items()}
                rows += compare("SE overhead, inference, BN folded", folded, batch, False, args)
        if not args.skip_train:
            rows += compare("SE overhead, train step", paper, args.train_batch, True, args)
    if not args.skip_timm:
        import timm

        ours = senet.create_model("se_resnet50", stride_in_1x1=False)
        theirs = timm.create_model("seresnet50", pretrained=False)
        n_ours, n_theirs = (sum(p.numel() for p in m.parameters()) for m in (ours, theirs))
        print(f"parameters: ours (stride_in_1x1=False) {n_ours:,}, timm seresnet50 {n_theirs:,}")
        vs_timm = {
            "timm seresnet50": lambda: timm.create_model("seresnet50", pretrained=False),
            "se_resnet50 (ours, stride on 3x3)": lambda: senet.create_model("se_resnet50", stride_in_1x1=False),
        }
        vs_timm_inference = dict(vs_timm)
        if args.fold_bn:
            vs_timm_inference["se_resnet50 (ours, stride on 3x3, BN folded)"] = _folded(vs_timm[next(reversed(vs_timm))])
        for batch in args.batch_sizes:
            rows += compare("vs timm, inference", vs_timm_inference, batch, False, args)
        if not args.skip_train:
            rows += compare("vs timm, train step", vs_timm, args.train_batch, True, args)
    header = ["comparison", "memory format", "batch", "model", "ms", "time / first", "speed vs first"]
    print(format_table(header, rows))
    print("'first' is the first row of each (comparison, format, batch) group: resnet50 for the SE overhead, "
          "timm for the comparison with timm. SE overhead = time / first - 1; ours vs timm = speed vs first.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
