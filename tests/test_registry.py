"""The strict registry and the notebook's two models."""

import pytest
import torch

import senet
from senet.models.registry import register_model


def test_notebook_models_have_9227_parameters_and_ten_logits():
    for name in ("notebook_simple", "notebook_se_residual"):
        model = senet.create_model(name)
        assert senet.count_params(model) == 9227  # 320 + 512 + 512 + 33 + 7850
        assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)


def test_notebook_se_has_ratio_two_and_no_bias():
    se = senet.create_model("notebook_simple").se
    assert se.rd_channels == 16 and se.fc1.bias is None and se.fc2.bias is None


def test_se_residual_adds_the_se_output_to_its_input():
    simple, residual = senet.create_model("notebook_simple"), senet.create_model("notebook_se_residual")
    residual.load_state_dict(simple.state_dict())
    x = torch.randn(2, 1, 28, 28)
    feat = torch.relu(simple.conv(x))
    expected_res = residual.fc(torch.relu(residual.proj(simple.se(feat) + feat)).flatten(1))
    torch.testing.assert_close(residual(x), expected_res)
    assert not torch.allclose(simple(x), residual(x))


def test_notebook_model_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        senet.create_model("notebook_simple")(torch.randn(1, 3, 28, 28))


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="already registered"):
        @register_model
        def notebook_simple():
            return torch.nn.Identity()


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="did you mean notebook_simple"):
        senet.create_model("notebook_simpel")


def test_unknown_kwarg_names_the_accepted_ones():
    with pytest.raises(ValueError, match="does not take argument.*colour.*accepts num_classes"):
        senet.create_model("notebook_simple", colour="red")


def test_list_models_filters_by_pattern_and_created_models_remember_their_config():
    assert senet.list_models("notebook_*") == ["notebook_se_residual", "notebook_simple"]
    assert senet.list_models("no_such_*") == []
    model = senet.create_model("notebook_simple", num_classes=3)
    assert model.senet_config == {"name": "notebook_simple", "kwargs": {"num_classes": 3}}
