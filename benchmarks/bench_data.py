"""Does the data pipeline outrun the model? Loader images/s for Fashion-MNIST against se_resnet20's training rate.

Candidates, timed in blocks of ``--batches`` batches of 256 and interleaved round by round (benchmarks/_timing.py):

* ``loader, workers=0``   - senet.data's batch path in the main process (one gather + normalise per batch);
* ``loader, workers=2``   - the same in two worker processes (kept alive between blocks);
* ``per-sample baseline``  - the same dataset read one item at a time through ``default_collate``, the usual
  ``Dataset`` route (shows what the batch-level path buys);
* ``se_resnet20 train step`` - forward + backward + SGD step on a 1x28x28 batch, the rate a training run consumes.

Run: ``.venv/bin/python benchmarks/bench_data.py`` (``--batches 20 --repeats 5`` for a quicker look). Only the
ratios are meant to be quoted; the machine is shared. With workers=2 the workers prefetch while other candidates
run, so each block starts with up to 4 batches ready - a slight overstatement for that row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import add_common_args, apply_common_args, describe_machine, format_table, interleaved, median_ms, spread

from senet.data import load_dataset, make_loader
from senet.models import create_model

BATCH = 256


class _OneAtATime(Dataset):
    """Hides ``__getitems__``: the DataLoader fetches and collates item by item (the per-sample baseline)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]


def _endless(loader: DataLoader):
    while True:
        yield from loader


def _block(batches, count: int):
    def run() -> None:
        for _ in range(count):
            next(batches)

    return run


def _train_steps(model: torch.nn.Module, count: int):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = torch.randn(BATCH, 1, 28, 28), torch.randint(0, 10, (BATCH,))

    def run() -> None:
        for _ in range(count):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, repeats=5, warmup=1, gpu=False)
    parser.add_argument("--batches", type=int, default=40, help="batches per timed block (default 40)")
    parser.add_argument("--model-batches", type=int, default=1, help="train steps per timed block (default 1)")
    parser.add_argument("--no-model", action="store_true", help="skip the se_resnet20 training-rate row")
    args = parser.parse_args(argv)
    apply_common_args(args)

    train = load_dataset("fashion-mnist").train
    blocks = {
        "loader, workers=0": (
            _block(_endless(make_loader(train, BATCH, shuffle=True, workers=0)), args.batches),
            args.batches,
        ),
        "loader, workers=2": (
            _block(_endless(make_loader(train, BATCH, shuffle=True, workers=2)), args.batches),
            args.batches,
        ),
        "per-sample baseline": (
            _block(
                _endless(DataLoader(_OneAtATime(train), BATCH, shuffle=True, collate_fn=default_collate)),
                max(2, args.batches // 10),
            ),
            max(2, args.batches // 10),
        ),
    }
    if not args.no_model:
        model = create_model("se_resnet20", in_chans=1, num_classes=10).train()
        blocks["se_resnet20 train step"] = (_train_steps(model, args.model_batches), args.model_batches)

    times = interleaved({name: fn for name, (fn, _) in blocks.items()}, repeats=args.repeats, warmup=args.warmup)
    rates = {name: blocks[name][1] * BATCH / (median_ms(t) / 1e3) for name, t in times.items()}
    reference = rates.get("se_resnet20 train step")
    rows = []
    for name, t in times.items():
        row = [name, f"{rates[name]:,.0f}", f"{spread(t):.2f}"]
        if reference:
            row.append(f"{rates[name] / reference:.1f}x")
        rows.append(row)
    header = ["candidate (Fashion-MNIST, batch 256)", "images/s", "IQR/median"]
    if reference:
        header.append("vs se_resnet20 training")
    print(describe_machine())
    print(format_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
