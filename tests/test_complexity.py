"""Parameter and multiply-add counting, with the SE pooling/scale convention."""

import pytest
import torch
import torchvision
from torch import nn

import senet
from senet.complexity import model_complexity


def test_torchvision_resnet50_matches_the_well_known_count():
    stats = model_complexity(torchvision.models.resnet50())
    assert stats["params"] == 25_557_032
    assert abs(stats["macs"] / 1e9 - 4.09) < 0.005  # stride on the 3x3 ("v1.5")
    assert stats["se_params"] == 0


def test_conv_linear_and_se_element_ops_are_counted_exactly():
    # conv: 8 out * 3 in * 3*3 * 10*10 positions; SE: fc1 8*4, fc2 4*8 MACs + 2 ops per element (pool + scale);
    # linear: 800 * 5
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), senet.SqueezeExcite(8, 2, bias=False), nn.Flatten(), nn.Linear(800, 5)
    )
    stats = model_complexity(model, (3, 10, 10))
    conv, fcs, elems, linear = 8 * 3 * 9 * 100, 8 * 4 + 4 * 8, 2 * 800, 800 * 5
    assert stats["macs"] == conv + fcs + elems + linear
    assert stats["se_params"] == 64
    assert stats["params"] == 8 * 27 + 64 + 800 * 5 + 5


def test_no_squeeze_counts_full_resolution_fcs_and_no_pooling():
    se = senet.SqueezeExcite(8, 2, squeeze="none", bias=False)
    stats = model_complexity(se, (8, 5, 5))
    assert stats["macs"] == 25 * (8 * 4 + 4 * 8) + 8 * 25  # FCs at every position + the scale


def test_counting_allocates_nothing_and_leaves_the_model_untouched():
    model = senet.create_model("notebook_simple")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    model_complexity(model, (1, 28, 28))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not p.is_meta for p in model.parameters())
    with torch.device("meta"):
        big = torchvision.models.resnet152()
    assert model_complexity(big)["params"] == 60_192_808


def test_batch_size_scales_macs_and_bad_input_size_raises():
    model = senet.create_model("notebook_simple")
    one = model_complexity(model, (1, 28, 28))["macs"]
    assert model_complexity(model, (1, 28, 28), batch_size=4)["macs"] == 4 * one
    with pytest.raises(ValueError, match="input_size"):
        model_complexity(model, (1, 0, 28))
