"""Training-step cost of SE on 28x28x1 inputs, and whether the Fashion-MNIST loader keeps up with the model.

In one process, interleaved run by run, fp32, batch 256, both memory formats:

1. ``se_resnet20`` vs ``resnet20`` (CIFAR-style, ``in_chans=1``, 10 classes): one SGD step (forward, loss,
   backward, update) per call. Target: SE overhead <= 6%.
2. The data pipeline: batches per second that ``senet.data.make_loader`` delivers from the Fashion-MNIST train
   split (augmented as ``senet train`` sees it) vs the images per second the SE model's training step consumes.
   Target: the loader is >= 5x faster than the model, so it never starves training.

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --workers 0 --repeats 20 --formats channels_last
    python benchmarks/bench_train.py --compile
    python benchmarks/bench_train.py --device cuda --dtype bf16 --skip-data
    python benchmarks/bench_train.py --dtype bf16       # bf16 autocast on the CPU (AVX512-BF16 / AMX)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import (
    FORMATS,
    add_common_args,
    add_formats_arg,
    apply_common_args,
    describe_machine,
    format_table,
    interleaved,
    median_ms,
    paired_ratio,
    sgd_step_fn,
)

MODEL_KWARGS = {"in_chans": 1, "num_classes": 10}
SGD = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def next_batch_fn(loader) -> Callable[[], object]:
    """Each call returns the loader's next batch, starting a new epoch when one ends."""
    state = {"it": iter(loader)}

    def run() -> object:
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            return next(state["it"])

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="loader worker processes (default 0)")
    add_formats_arg(parser)
    parser.add_argument("--skip-data", action="store_true", help="no data-pipeline comparison")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models first")
    add_common_args(parser, repeats=10, warmup=2)
    args = parser.parse_args(argv)
    apply_common_args(args)

    import senet

    precision = "bf16 autocast" if args.dtype == "bf16" else "fp32"
    print(f"training step, 28x28x1, batch {args.batch}, {precision} on {args.device}"
          + (", torch.compile" if args.compile else ", eager"))
    print(describe_machine(args.device))
    rows: list[list] = []
    se_step_ms: dict[str, float] = {}
    for fmt_name in args.formats:
        fmt = FORMATS[fmt_name]
        torch.manual_seed(0)
        x = torch.randn(args.batch, 1, 28, 28, device=args.device).contiguous(memory_format=fmt)
        y = torch.randint(0, 10, (args.batch,), device=args.device)
        fns = {}
        for name in ("resnet20", "se_resnet20"):
            model = senet.create_model(name, **MODEL_KWARGS).train().to(args.device, memory_format=fmt)
            fns[name] = sgd_step_fn(torch.compile(model) if args.compile else model, x, y, args, **SGD)
        times = interleaved(fns, args.repeats, args.warmup, sync=args.sync)
        for name in fns:
            t = median_ms(times[name])
            rows.append([fmt_name, name, t, args.batch / t * 1e3, paired_ratio(times[name], times["resnet20"])])
        se_step_ms[fmt_name] = median_ms(times["se_resnet20"])
    print(format_table(["memory format", "model", "step ms", "images/s", "time / resnet20"], rows))

    if not args.skip_data:
        from senet.data import load_dataset, make_loader

        bundle = load_dataset("fashion-mnist")
        loader = make_loader(bundle.train, args.batch, shuffle=True, workers=args.workers)
        fmt_name = args.formats[-1]
        fmt = FORMATS[fmt_name]
        model = senet.create_model("se_resnet20", **MODEL_KWARGS).train().to(args.device, memory_format=fmt)
        model = torch.compile(model) if args.compile else model
        fetch = next_batch_fn(loader)
        images, labels = fetch()
        images = images.to(args.device).contiguous(memory_format=fmt)
        step = sgd_step_fn(model, images, labels.to(args.device), args, **SGD)
        times = interleaved({"loader": fetch, "se_resnet20 step": step}, args.repeats, args.warmup, sync=args.sync)
        load_ips = args.batch / median_ms(times["loader"]) * 1e3
        step_ips = args.batch / median_ms(times["se_resnet20 step"]) * 1e3
        print(f"\nFashion-MNIST loader (workers={args.workers}, augmented train split): {load_ips:,.0f} images/s; "
              f"se_resnet20 training ({fmt_name}): {step_ips:,.0f} images/s; loader / model = {load_ips / step_ips:.1f}x"
              " (target >= 5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
