"""Random erasing (Zhong et al. 2017) as a train augmentation: the boxes it draws, where it applies, how it is asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from senet.data import load_dataset
from senet.data.tensor_dataset import ImageTensorDataset
from senet.data.transforms import BatchAugment
from senet.errors import ConfigError


def _boxes(before: torch.Tensor, after: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """Per image, the bounding box (top, left, height, width) of the pixels erasing changed, or None."""
    out = []
    for changed in (before != after).any(dim=1):
        ys, xs = torch.nonzero(changed, as_tuple=True)
        if len(ys) == 0:
            out.append(None)
            continue
        top, left = int(ys.min()), int(xs.min())
        out.append((top, left, int(ys.max()) - top + 1, int(xs.max()) - left + 1))
    return out


def test_erased_pixels_fill_one_box_of_the_papers_size_and_shape():
    """Every changed pixel lies in one rectangle of 2%-33% of the image with aspect 0.3-3.3, filled with noise."""
    images = torch.full((400, 3, 32, 32), 7, dtype=torch.uint8)
    erased = BatchAugment(erase=1.0).erase_boxes(images, torch.Generator().manual_seed(0))
    boxes = _boxes(images, erased)
    assert all(b is not None for b in boxes)  # p = 1: every image has a box
    for image, (top, left, h, w) in zip(erased, boxes):
        inside = image[:, top:top + h, left:left + w]
        outside = image.clone()
        outside[:, top:top + h, left:left + w] = 7
        assert (outside == 7).all()  # nothing changed outside the box
        # a whole box of uniform noise: about 1/256 of its pixels keep the value 7 by chance
        assert (inside == 7).float().mean() < 0.1 and inside.float().std() > 50
        # clipping to the image can shrink a side; the drawn area is 2%-33% of 1024 pixels
        assert 0.02 * 1024 - 2 * (h + w) <= h * w <= 1024 / 3 + h + w + 1
        assert 0.3 / 1.5 <= h / w <= 3.3 * 1.5 or max(h, w) == 32
    areas = torch.tensor([h * w for _, _, h, w in boxes], dtype=torch.float)
    assert 0.1 * 1024 < areas.mean() < 0.22 * 1024  # uniform over 2%-33%: mean 17.5% before clipping


def test_erasing_probability_is_per_image():
    images = torch.zeros(2000, 1, 28, 28, dtype=torch.uint8)
    erased = BatchAugment(erase=0.3).erase_boxes(images, torch.Generator().manual_seed(1))
    share = sum(b is not None for b in _boxes(images, erased)) / 2000
    assert 0.26 < share < 0.34


def test_no_erasing_leaves_crop_and_flip_draws_as_they_were():
    """erase = 0 draws nothing extra, so runs recorded before erasing existed reproduce bit for bit."""
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    plain, with_field = BatchAugment(padding=2, flip=True), BatchAugment(padding=2, flip=True, erase=0.0)
    a = plain(images, torch.Generator().manual_seed(3))
    b = with_field(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    erasing = BatchAugment(padding=2, flip=True, erase=0.5)(images, torch.Generator().manual_seed(3))
    assert torch.equal(erasing, BatchAugment(padding=2, flip=True, erase=0.5)(images, torch.Generator().manual_seed(3)))
    assert not torch.equal(erasing, a)
    unerased = [i for i, box in enumerate(_boxes(a, erasing)) if box is None]
    assert unerased and torch.equal(erasing[unerased], a[unerased])  # same crops and flips underneath


def test_load_dataset_erases_training_images_only():
    bundle = load_dataset("synthetic:train=64,val=32,size=16", random_erasing=1.0)
    assert bundle.train.augment.erase == 1.0
    plain = load_dataset("synthetic:train=64,val=32,size=16")
    assert isinstance(plain.train, ImageTensorDataset) and bundle.val.augment is None
    assert torch.equal(bundle.val.get_batch(range(32))[0], plain.val.get_batch(range(32))[0])


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist "
                           "(apt-get install dataset-fashion-mnist)")
def test_held_out_split_of_a_real_dataset_keeps_plain_validation():
    bundle = load_dataset("fashion-mnist", random_erasing=0.5, train_subset=64, val_subset=64, test_subset=64)
    assert bundle.train.augment.erase == 0.5 and bundle.train.augment.padding == 2
    assert bundle.val.augment is None and bundle.test.augment is None


@pytest.mark.parametrize("value", [-0.1, 1.5, "x", True, float("nan")])
def test_bad_probability_is_one_line(value):
    with pytest.raises(ConfigError, match="random_erasing must be a probability"):
        load_dataset("synthetic:train=8,val=8", random_erasing=value)


def test_erasing_without_augmentation_is_refused():
    with pytest.raises(ConfigError, match="cannot be combined with augment off"):
        load_dataset("synthetic:train=8,val=8", random_erasing=0.5, augment=False)
    from senet.train.config import make_config

    with pytest.raises(ConfigError, match="--random-erasing .* --no-augment"):
        make_config({"model": "resnet8", "data": "synthetic", "random_erasing": 0.5, "augment": False}).validate()


def test_image_folders_erase_through_their_transform():
    from torchvision.transforms import v2

    from senet.data.transforms import imagenet_train_transform

    steps = imagenet_train_transform(32, erase=0.25).transforms
    assert isinstance(steps[-1], v2.RandomErasing) and steps[-1].p == 0.25
    assert not any(isinstance(s, v2.RandomErasing) for s in imagenet_train_transform(32).transforms)


def test_cli_flag_reaches_the_run_and_is_recorded(tmp_path, capsys):
    from senet.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", "notebook_simple", "--data", "synthetic:train=32,val=16", "--epochs", "1",
                 "--batch-size", "16", "--random-erasing", "0.5", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["train_config"]["random_erasing"] == 0.5
    assert main(["train", "--model", "notebook_simple", "--data", "synthetic", "--random-erasing", "2",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--random-erasing" in err and "\n" not in err


def test_runs_saved_before_the_option_existed_still_resume(tmp_path):
    """A state file's recipe without ``random_erasing`` matches a run whose value is the default (0)."""
    from senet.train.config import TrainConfig
    from senet.train.state import check_state_matches_run

    recipe = TrainConfig(model="resnet8", data="synthetic").recipe()
    old = {k: v for k, v in recipe.items() if k != "random_erasing"}
    check_state_matches_run({"recipe": old}, recipe, tmp_path)  # no error
    from senet.errors import SenetError

    with pytest.raises(SenetError, match="random_erasing"):
        check_state_matches_run({"recipe": old}, {**recipe, "random_erasing": 0.5}, tmp_path)


def test_the_trainer_loads_its_training_set_with_erasing():
    from types import SimpleNamespace

    from senet.train.config import make_config
    from senet.train.loop import _load_data

    config = make_config({"model": "notebook_simple", "data": "synthetic:train=32,val=16", "random_erasing": 0.4})
    bundle = _load_data(SimpleNamespace(world_size=1), config.validate())
    assert bundle.train.augment.erase == 0.4 and bundle.val.augment is None
