"""Where the time of one training step (or one SE op) goes: torch.profiler's top operators, model beside model.

The benchmarks say *how much* SE costs; this says *which kernels* cost it. For each ``--models`` entry it profiles
``--steps`` training steps (forward, loss, backward, SGD update) after a warm-up and prints the operators with the
most self time on the device (CUDA kernels on a GPU, operator self time on a CPU).

    python benchmarks/profile_step.py --device cuda --dtype bf16 --models resnet50 se_resnet50 --batch 128
    python benchmarks/profile_step.py --models resnet20 se_resnet20 --size 28 --in-chans 1 --batch 256
    python benchmarks/profile_step.py --device cuda --dtype bf16 --se-op         # SqueezeExcite(256) alone
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import add_malloc_arg, apply_common_args, describe_machine, sgd_step_fn


def model_step(name: str, args: argparse.Namespace):
    import senet

    model = senet.create_model(name, in_chans=args.in_chans, num_classes=10).train()
    model = model.to(args.device, memory_format=args.memory_format)
    model = torch.compile(model) if args.compile else model
    x = torch.randn(args.batch, args.in_chans, args.size, args.size, device=args.device)
    x = x.contiguous(memory_format=args.memory_format)
    y = torch.randint(0, 10, (args.batch,), device=args.device)
    return sgd_step_fn(model, x, y, args)


def se_op_step(args: argparse.Namespace):
    import senet

    se = senet.SqueezeExcite(256, 16).to(args.device, args.torch_dtype)
    se = torch.compile(se) if args.compile else se
    x = torch.randn(32, 256, 56, 56, device=args.device, dtype=args.torch_dtype)
    x = x.contiguous(memory_format=args.memory_format).requires_grad_(True)
    grad = torch.randn_like(x)

    def step() -> None:
        se(x).backward(grad)
        x.grad = None

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "se_resnet50"])
    parser.add_argument("--se-op", action="store_true", help="profile SqueezeExcite(256) on (32, 256, 56, 56) instead")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="input side (default 224)")
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (default 5)")
    parser.add_argument("--top", type=int, default=15, help="operators listed per model (default 15)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last model and input")
    parser.add_argument("--compile", action="store_true", help="torch.compile first")
    parser.add_argument("--warmup", type=int, default=3, help="unprofiled steps first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="fp32 or bf16 (autocast for models)")
    add_malloc_arg(parser)
    parser.set_defaults(repeats=1)  # apply_common_args checks it; profiling has --steps instead
    args = parser.parse_args(argv)
    if args.steps < 1:
        raise SystemExit("profile_step: --steps must be >= 1")
    apply_common_args(args)
    args.memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    print(describe_machine(args.device))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    sort_key = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    targets = {"SqueezeExcite(256)": se_op_step(args)} if args.se_op else {m: model_step(m, args) for m in args.models}
    for name, step in targets.items():
        for _ in range(args.warmup):
            step()
        if args.sync:
            args.sync()
        with profile(activities=activities) as prof:
            for _ in range(args.steps):
                step()
            if args.sync:
                args.sync()
        layout = "channels_last" if args.channels_last else "contiguous"
        print(f"\n== {name}, {layout}, {args.dtype}, {args.steps} steps ==")
        print(prof.key_averages().table(sort_by=sort_key, row_limit=args.top, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
