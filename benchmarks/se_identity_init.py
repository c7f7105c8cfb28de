"""How far adding SE blocks moves a network's logits before any training: random SE init vs ``init="identity"``.

Two cases, both on real images (the first N Fashion-MNIST test images):

* ``add_se`` on a torchvision ResNet-18 (random weights with seed 0, evaluation mode; nothing is downloaded), the
  28x28 images upscaled to 64x64 and repeated over three channels;
* ``--run DIR``: a plain senet run (e.g. ``senet train --model resnet20 --data fashion-mnist ...``) loaded into its
  SE counterpart the way ``senet train --init-from DIR --model se_<name>`` does it (identity), against the same
  model with the SE blocks left at their random initialisation.

Prints, per case and init, the largest absolute logit change and the largest absolute logit (the scale).

    python benchmarks/se_identity_init.py [--images 512] [--run runs/resnet20_fmnist]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F


def _fmnist_images(count: int) -> torch.Tensor:
    from senet.data import load_dataset

    bundle = load_dataset("fashion-mnist", val_split=0, test_subset=None)
    images, _ = bundle.test.get_batch(torch.arange(count))
    return images


def _row(case: str, init: str, before: torch.Tensor, after: torch.Tensor) -> str:
    change = float((after - before).abs().max())
    return f"| {case} | {init} | {change:.3g} | {float(before.abs().max()):.3g} |"


@torch.no_grad()
def torchvision_case(images: torch.Tensor) -> list[str]:
    import torchvision

    from senet import add_se

    x = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    rows = []
    for init in ("random", "identity"):
        torch.manual_seed(0)
        model = torchvision.models.resnet18().eval()
        before = model(x)
        add_se(model, init=init)
        rows.append(_row("torchvision resnet18 + add_se", init, before, model.eval()(x)))
    return rows


@torch.no_grad()
def run_case(images: torch.Tensor, run: str) -> list[str]:
    from senet.io import load_model
    from senet.models import create_model
    from senet.train.init_from import load_initial_weights, read_source

    plain = load_model(run)
    source = read_source(run)
    before = plain(images)
    name = "se_" + source.model
    kwargs = {**source.kwargs}
    identity = create_model(name, **kwargs).eval()
    load_initial_weights(identity, source)
    torch.manual_seed(0)
    random_se = create_model(name, **kwargs).eval()
    random_se.load_state_dict(source.state, strict=False)  # every plain tensor, SE blocks as built
    return [_row(f"{source.model} run -> {name}", "random", before, random_se(images)),
            _row(f"{source.model} run -> {name}", "identity", before, identity(images))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--run", help="a plain senet run folder trained on Fashion-MNIST")
    args = parser.parse_args()
    images = _fmnist_images(args.images)
    print(f"{args.images} Fashion-MNIST test images")
    print("| model | SE init | max abs logit change | max abs logit |")
    print("|---|---|---:|---:|")
    for line in torchvision_case(images) + (run_case(images, args.run) if args.run else []):
        print(line)


if __name__ == "__main__":
    main()
