"""What does recording the excitations cost? ExcitationRecorder throughput as a ratio to plain evaluation.

Candidates, one pass each over the same ``--batches`` in-memory batches (Fashion-MNIST-sized random images,
1x28x28, 10 classes), interleaved round by round (benchmarks/_timing.py):

* ``plain eval``           - ``model(x)`` under ``torch.inference_mode`` (the baseline);
* ``ExcitationRecorder``   - the same forward with every SE gate hooked and streamed into per-class float64
  statistics (``rec.record(x, y)``), hooks registered and removed once per pass;
* ``statistics only``     - the recorder's own work without the forward: the same per-class streaming update
  applied to gate outputs captured beforehand. On a noisy machine the first ratio wobbles by several percent
  either way; ``plain / (plain + statistics only)`` is the overhead-implied ratio, printed as well.

Run: ``.venv/bin/python benchmarks/bench_analysis.py`` (``--device cuda`` on a GPU; ``--model``, ``--batches``,
``--batch-size`` to vary). The target is a ratio >= 0.9x. Only the ratio is meant to be quoted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import add_common_args, apply_common_args, describe_machine, format_table, interleaved, median_ms, spread

from senet.analysis import ClassStats, ExcitationRecorder, channel_gates
from senet.models import create_model, named_se_blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="se_resnet20", help="registered SE model (default se_resnet20)")
    parser.add_argument("--batches", type=int, default=6, help="batches per pass (default 6)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch (default 256)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    add_common_args(parser, repeats=7, warmup=1, gpu=False)
    args = parser.parse_args(argv)
    apply_common_args(args)
    device = torch.device(args.device)

    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10, in_chans=1).to(device).eval()
    batches = [(torch.randn(args.batch_size, 1, 28, 28, device=device), torch.randint(0, 10, (args.batch_size,)))
               for _ in range(args.batches)]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def plain() -> None:
        with torch.inference_mode():
            for x, _ in batches:
                model(x)
        sync()

    def recorded() -> None:
        with ExcitationRecorder(model, num_classes=10) as rec:
            for x, y in batches:
                rec.record(x, y)
        rec.stats()  # include the final copy of the statistics to the CPU
        sync()

    captured: list[list[torch.Tensor]] = []
    handles = [g.register_forward_hook(lambda m, i, o: captured[-1].append(o.detach()))
               for g in channel_gates(model).values()]
    with torch.inference_mode():
        for x, _ in batches:
            captured.append([])
            model(x)
    for h in handles:
        h.remove()

    def statistics_only() -> None:
        acc: dict[int, ClassStats] = {}
        for outputs, (_, y) in zip(captured, batches):
            y_dev = y.to(device)
            for i, s in enumerate(outputs):
                batch = ClassStats.from_batch(s.to(torch.float64).flatten(1), y_dev, 10)
                acc[i] = acc[i].merge_(batch) if i in acc else batch
        sync()

    candidates = {"plain eval": plain, "ExcitationRecorder": recorded, "statistics only": statistics_only}
    times = interleaved(candidates, args.repeats, args.warmup)
    images = args.batches * args.batch_size
    base = median_ms(times["plain eval"])
    rows = []
    for name, samples in times.items():
        ms = median_ms(samples)
        rows.append([name, ms, images / ms * 1e3, base / ms, spread(samples)])
    print(f"{args.model}: {len(named_se_blocks(model))} SE blocks, {args.batches} x {args.batch_size} images "
          f"1x28x28 on {device}; {describe_machine()}")
    print(format_table(["candidate", "ms / pass", "images / s", "throughput vs plain", "IQR/median"], rows))
    ratio = base / median_ms(times["ExcitationRecorder"])
    implied = base / (base + median_ms(times["statistics only"]))
    print(f"analysis throughput = {ratio:.3f}x plain evaluation measured, {implied:.4f}x implied by the "
          "recorder's own cost (target >= 0.9x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
