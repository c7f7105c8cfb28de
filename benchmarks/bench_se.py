"""SE op cost as a ratio to one memory pass: ``senet.SqueezeExcite`` vs ``x * 1.0`` on the same tensor.

The squeeze reads U once, the scale reads it again and writes the output; ``x * 1.0`` reads and writes once, so
an SE forward near 1.0x the copy is at the memory limit (issue target: <= 1.15x). torchvision's
``ops.SqueezeExcitation`` with the same widths runs beside it, interleaved in the same process, in both memory
formats. Forward runs under ``torch.no_grad``; forward+backward back-propagates a fixed upstream gradient.

    python benchmarks/bench_se.py                 # (32, 256, 56, 56) fp32, 2 threads
    python benchmarks/bench_se.py --quick         # (8, 256, 28, 28)
    python benchmarks/bench_se.py --compile       # also torch.compile'd SE and torchvision
    python benchmarks/bench_se.py --fc            # the excitation's FCs: 1x1 conv call vs F.linear
    python benchmarks/bench_se.py --device cuda --dtype bf16   # on a GPU, bf16 tensors
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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
)

TARGET_FORWARD = 1.15


class Copy(nn.Module):
    """The baseline: one read and one write of the tensor (``x * 1.0``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def build_candidates(channels: int, reduction: int) -> dict[str, nn.Module]:
    import torchvision

    import senet

    ours = senet.SqueezeExcite(channels, reduction)
    ref = torchvision.ops.SqueezeExcitation(channels, channels // reduction)
    ref.load_state_dict(ours.state_dict())
    return {"x * 1.0": Copy(), "senet.SqueezeExcite": ours, "torchvision SqueezeExcitation": ref}


def forward_fn(mod: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return mod(x)

    return run


def train_fn(mod: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], object]:
    leaf = x.detach().requires_grad_(True)

    def run() -> object:
        mod(leaf).backward(grad)
        leaf.grad = None
        return None

    return run


def bench_layout(name: str, mods: dict[str, nn.Module], shape: tuple[int, ...], args: argparse.Namespace) -> list[list]:
    fmt = FORMATS[name]
    inner = 20 if args.device == "cuda" else 1  # one GPU call is ~0.1 ms: time 20 back to back per sample
    x = torch.randn(shape, device=args.device, dtype=args.torch_dtype).contiguous(memory_format=fmt)
    for mod in mods.values():
        out = forward_fn(mod, x)()
        if not out.is_contiguous(memory_format=fmt):
            print(f"  note: {type(mod).__name__} changed the memory format of its output ({name} input)")
    del out
    fwd = interleaved({k: forward_fn(m, x) for k, m in mods.items()}, args.repeats, args.warmup, inner, args.sync)
    # Allocated only now: on the VM these figures come from, one more live full-size tensor made every forward
    # slower and the forward ratios larger (allocator / page-fault effects), so forward runs with x alone.
    grad = torch.randn(shape, device=args.device, dtype=args.torch_dtype).contiguous(memory_format=fmt)
    trn = interleaved({k: train_fn(m, x, grad) for k, m in mods.items()}, max(3, args.repeats // 2), args.warmup,
                      inner, args.sync)
    rows = []
    for k in mods:
        f, t = median_ms(fwd[k]), median_ms(trn[k])
        rows.append([name, k, f, paired_ratio(fwd[k], fwd["x * 1.0"]), t, paired_ratio(trn[k], trn["x * 1.0"])])
    return rows


def bench_fc(channels: int, reduction: int, batch: int, args: argparse.Namespace) -> None:
    """The excitation's two FCs on (N, C, 1, 1): a 1x1 convolution call vs F.linear on (N, C)."""
    rd = channels // reduction
    conv1, conv2 = nn.Conv2d(channels, rd, 1), nn.Conv2d(rd, channels, 1)
    z = torch.randn(batch, channels, 1, 1)
    w1, w2 = conv1.weight.flatten(1), conv2.weight.flatten(1)

    def as_conv() -> object:
        return torch.sigmoid(conv2(torch.relu(conv1(z))))

    def as_linear() -> object:
        h = F.linear(torch.relu(F.linear(z.flatten(1), w1, conv1.bias)), w2, conv2.bias)
        return torch.sigmoid(h).view(batch, channels, 1, 1)

    with torch.no_grad():
        torch.testing.assert_close(as_conv(), as_linear())
        t = interleaved({"conv": as_conv, "linear": as_linear}, args.repeats, args.warmup, inner=50)
    c, lin = median_ms(t["conv"]) * 1e3, median_ms(t["linear"]) * 1e3
    print(f"\nexcitation FCs on ({batch}, {channels}, 1, 1): 1x1 conv {c:.1f} us, linear {lin:.1f} us, "
          f"conv/linear = {c / lin:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shape (8, 256, 28, 28)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd modules")
    parser.add_argument("--fc", action="store_true", help="also compare the excitation FCs as 1x1 conv vs linear")
    add_formats_arg(parser)
    add_common_args(parser, repeats=15, warmup=3)
    args = parser.parse_args(argv)
    apply_common_args(args)
    torch.manual_seed(0)
    shape = (8, 256, 28, 28) if args.quick else (32, 256, 56, 56)
    channels, reduction = shape[1], 16
    print(f"SE op vs one memory pass, input {shape} {args.dtype} on {args.device}, "
          f"SqueezeExcite({channels}, {reduction})")
    print(describe_machine(args.device))
    mods = {k: m.to(args.device, args.torch_dtype) for k, m in build_candidates(channels, reduction).items()}
    if args.compile:  # compile after the move, so the compiled graphs see the benchmark's device and dtype
        mods["senet.SqueezeExcite (compiled)"] = torch.compile(mods["senet.SqueezeExcite"])
        mods["torchvision (compiled)"] = torch.compile(mods["torchvision SqueezeExcitation"])
    rows = []
    for name in args.formats:
        rows += bench_layout(name, mods, shape, args)
    print(format_table(["memory format", "module", "fwd ms", "fwd / copy", "fwd+bwd ms", "fwd+bwd / copy"], rows))
    for row in rows:
        if row[1] == "senet.SqueezeExcite":
            verdict = "meets" if row[3] <= TARGET_FORWARD else "MISSES"
            print(f"{row[0]}: SE forward = {row[3]:.2f}x the copy, {verdict} the <= {TARGET_FORWARD}x target")
    if args.fc:
        bench_fc(channels, reduction, shape[0], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
