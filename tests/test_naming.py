"""SE blocks of the ResNet family are named SE_<stage>_<block> as in the paper's section 7.2."""

from __future__ import annotations

import torch

from senet import SqueezeExcite, add_se, create_model, named_se_blocks


def expected(depths: list[int]) -> list[str]:
    return [f"SE_{s}_{b}" for s, n in enumerate(depths, start=2) for b in range(1, n + 1)]


def meta(name: str, **kwargs):
    with torch.device("meta"):
        return create_model(name, **kwargs)


def test_se_resnet50_names():
    model = meta("se_resnet50")
    blocks = named_se_blocks(model)
    assert list(blocks) == expected([3, 4, 6, 3])
    assert list(blocks)[:3] == ["SE_2_1", "SE_2_2", "SE_2_3"] and list(blocks)[-1] == "SE_5_3"
    assert blocks["SE_3_4"] is model.layer2[3].se  # the module itself, not a copy


def test_module_is_the_unit_attribute():
    m = meta("se_resnet50")
    assert named_se_blocks(m)["SE_4_6"] is m.layer3[5].se
    assert isinstance(m.layer3[5].se, SqueezeExcite)


def test_cifar_names_use_stages_2_to_4():
    assert list(named_se_blocks(create_model("se_resnet20"))) == expected([3, 3, 3])
    assert list(named_se_blocks(meta("se_wrn16_8"))) == expected([2, 2, 2])


def test_every_position_and_subset_keeps_the_names():
    for position in ("pre", "post", "identity", "after_3x3"):
        assert list(named_se_blocks(meta("se_resnet50", se_position=position))) == expected([3, 4, 6, 3])
    assert list(named_se_blocks(meta("se_resnet50", se_stages=[3, 5]))) == [
        *(f"SE_3_{b}" for b in range(1, 5)), *(f"SE_5_{b}" for b in range(1, 4))]
    assert list(named_se_blocks(meta("senet154")))[-1] == "SE_5_3"
    assert named_se_blocks(meta("resnet50")) == {}


def test_add_se_gives_the_same_names_as_the_registered_model():
    import torchvision

    with torch.device("meta"):
        tv = torchvision.models.resnet50()
    assert list(named_se_blocks(add_se(tv))) == list(named_se_blocks(meta("se_resnet50")))
