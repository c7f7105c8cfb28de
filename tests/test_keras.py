"""senet.keras: the notebook's SE API on Keras 3, checked against the PyTorch models (KERAS_BACKEND from conftest)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras internals

import senet
import senet.keras as sk
from senet.keras.weights import _Pair, _to_keras_kernel, _to_torch_weight


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


def _se_layer_notebook(use_bias: bool = False) -> keras.Model:
    """The simple notebook model built with the SqueezeExcite layer (named 'se') instead of the functional block."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv")(inputs)
    x = sk.SqueezeExcite(2, use_bias=use_bias, name="se")(x)
    x = keras.layers.Conv2D(1, 1, activation="relu", name="proj")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="fc")(x))


# --- optional dependency -------------------------------------------------------------------------------------


def test_senet_imports_without_keras_and_senet_keras_says_how_to_install():
    code = (
        "import sys\n"
        "import senet\n"
        "print('KERAS_LOADED', 'keras' in sys.modules)\n"
        "sys.modules['keras'] = None  # as if keras were not installed\n"
        "try:\n"
        "    import senet.keras\n"
        "except ImportError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "KERAS_LOADED False" in result.stdout
    assert "ERROR" in result.stdout and 'pip install "senet[keras]"' in result.stdout


# --- the notebook models --------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [sk.notebook_simple, sk.notebook_se_residual])
def test_notebook_models_have_9227_parameters_like_pytorch(build):
    model = build()
    assert model.count_params() == 9227
    torch_model = senet.create_model(model.name)
    assert sum(p.numel() for p in torch_model.parameters()) == 9227
    assert model.get_layer("se_fc1").count_params() == 512 and model.get_layer("fc").count_params() == 7850
    assert tuple(model.output.shape) == (None, 10)  # the classifier, not the Flatten the notebook returned
    assert ("residual" in [layer.name for layer in model.layers]) == (build is sk.notebook_se_residual)


def test_notebook_output_is_a_probability_distribution():
    out = _np(sk.notebook_simple()(np.random.rand(3, 28, 28, 1).astype("float32")))
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-6)


# --- weight copy in both directions ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["notebook_simple", "notebook_se_residual"])
def test_torch_to_keras_matches_softmax_of_pytorch_logits(name):
    torch_model = senet.create_model(name).eval()  # PyTorch's random init: every weight distinctive
    keras_model = sk.torch_to_keras(torch_model)
    assert keras_model.name == name
    x = torch.rand(4, 1, 28, 28)
    expected = torch.softmax(torch_model(x), -1).detach().numpy()
    assert expected.max() < 0.5  # not saturated, so a mis-mapped weight would show in the probabilities
    np.testing.assert_allclose(_np(keras_model(_nhwc(x))), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("build", [sk.notebook_simple, sk.notebook_se_residual])
def test_keras_to_torch_round_trip_restores_identical_weights(build):
    keras_model = build()
    torch_model = sk.keras_to_torch(keras_model)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        probs = torch.softmax(torch_model(x), -1).numpy()
    np.testing.assert_allclose(probs, _np(keras_model(_nhwc(x))), atol=1e-5, rtol=0)
    fresh = sk.torch_to_keras(torch_model, build())  # and back into a new Keras model
    for a, b in zip(keras_model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_copy_into_a_model_built_with_the_squeeze_excite_layer():
    torch_model = senet.create_model("notebook_simple")
    keras_model = sk.torch_to_keras(torch_model, _se_layer_notebook())
    x = torch.rand(2, 1, 28, 28)
    expected = torch.softmax(torch_model(x), -1).detach().numpy()
    np.testing.assert_allclose(_np(keras_model(_nhwc(x))), expected, atol=1e-5, rtol=0)


def test_channels_first_keras_model_converts_too():
    keras_model = sk.notebook_se_residual(data_format="channels_first")
    torch_model = sk.keras_to_torch(keras_model)
    x = torch.rand(2, 1, 28, 28)
    expected = torch.softmax(torch_model(x), -1).detach().numpy()
    np.testing.assert_allclose(_np(keras_model(x.numpy())), expected, atol=1e-5, rtol=0)


def test_classifier_reorders_flatten_from_chw_to_hwc_for_several_channels():
    # The notebook's Flatten sees one channel, where both orders coincide; check the general case directly.
    c, h, w, k = 3, 4, 5, 6
    linear = torch.nn.Linear(c * h * w, k)
    pair = _Pair("fc", None, linear, "flatten_dense")
    kernel = _to_keras_kernel(pair, linear.weight.detach().numpy(), (c, h, w))
    feature = torch.randn(2, c, h, w)
    expected = (torch.flatten(feature, 1) @ linear.weight.T).detach().numpy()
    keras_flat = feature.permute(0, 2, 3, 1).reshape(2, -1).numpy()  # Keras flattens (H, W, C)
    np.testing.assert_allclose(keras_flat @ kernel, expected, atol=1e-5)
    back = _to_torch_weight(pair, kernel, tuple(linear.weight.shape), (c, h, w))
    np.testing.assert_array_equal(back, linear.weight.detach().numpy())


def test_mismatched_models_are_refused_with_every_problem_listed():
    with pytest.raises(ValueError, match="SE-residual .* simple"):
        sk.torch_to_keras(senet.create_model("notebook_simple"), sk.notebook_se_residual())
    with pytest.raises(ValueError, match=r"fc.* needs a Keras kernel|C\*H\*W"):
        sk.torch_to_keras(senet.create_model("notebook_simple", num_classes=5), sk.notebook_simple())
    with pytest.raises(ValueError, match="bias absent in PyTorch but present"):
        sk.torch_to_keras(senet.create_model("notebook_simple"), _se_layer_notebook(use_bias=True))
    with pytest.raises(ValueError, match="expected a PyTorch notebook model"):
        sk.torch_to_keras(torch.nn.Linear(2, 2))


# --- the SqueezeExcite layer and the functional block -----------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{}, {"squeeze": "max", "use_bias": True}, {"gate": "tanh"}, {"gate": "hard_sigmoid", "ratio": 4}]
)
def test_layer_matches_the_pytorch_block(options):
    options = {"ratio": 8, **options}
    layer = sk.SqueezeExcite(**options)
    x = torch.randn(2, 16, 5, 3)
    keras_out = _np(layer(_nhwc(x)))
    ref = senet.SqueezeExcite(
        16,
        options["ratio"],
        squeeze=options.get("squeeze", "avg"),
        gate=options.get("gate", "sigmoid"),
        bias=options.get("use_bias", False),
    )
    with torch.no_grad():
        for fc, dense in ((ref.fc1, layer.fc1), (ref.fc2, layer.fc2)):
            kernel, *bias = dense.get_weights()
            fc.weight.copy_(torch.from_numpy(kernel.T).view_as(fc.weight))
            if bias:
                fc.bias.copy_(torch.from_numpy(bias[0]))
        expected = ref(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(keras_out, expected, atol=1e-5, rtol=0)


def test_functional_block_is_the_notebook_block():
    x = np.random.rand(2, 6, 6, 32).astype("float32")
    inputs = keras.Input((6, 6, 32))
    model = keras.Model(inputs, sk.squeeze_excite_block(inputs, ratio=16, name="blk"))
    assert model.count_params() == 2 * 32 * 2  # W1 (32x2) and W2 (2x32), no biases
    w1 = model.get_layer("blk_fc1").get_weights()[0]
    w2 = model.get_layer("blk_fc2").get_weights()[0]
    s = 1 / (1 + np.exp(-(np.maximum(x.mean((1, 2)) @ w1, 0) @ w2)))  # squeeze, excitation
    np.testing.assert_allclose(_np(model(x)), x * s[:, None, None, :], atol=1e-5)  # scale


def test_get_config_round_trip_and_keras_file(tmp_path):
    layer = sk.SqueezeExcite(4, use_bias=True, squeeze="max", gate="tanh", name="se")
    config = layer.get_config()
    json.dumps(config)
    clone = sk.SqueezeExcite.from_config(config)
    assert clone.get_config() == config
    inputs = keras.Input((4, 4, 8))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "se.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # found through register_keras_serializable(package="senet")
    assert isinstance(loaded.get_layer("se"), sk.SqueezeExcite)
    x = np.random.rand(2, 4, 4, 8).astype("float32")
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6)


def test_excitations_read_back_by_name_lie_in_0_1():
    x = np.random.rand(3, 28, 28, 1).astype("float32")
    for model in (sk.notebook_simple(), _se_layer_notebook()):
        s = _np(sk.excitation_model(model, "se")(x))
        assert s.shape == (3, 32)
        assert ((s > 0) & (s < 1)).all()
    model = sk.notebook_se_residual()
    gate = keras.Model(model.input, model.get_layer("se_reshape").output)  # the plain Keras way, by layer name
    assert _np(gate(x)).shape == (3, 1, 1, 32)
    with pytest.raises(ValueError, match="no SE block named 'nope'.*: se"):
        sk.excitation_model(model, "nope")


@pytest.mark.parametrize("ratio", [0, 0.5, -2, 33, True, "2"])
def test_bad_ratio_raises_a_clear_value_error(ratio):
    with pytest.raises(ValueError, match="reduction ratio r"):
        sk.SqueezeExcite(ratio)(keras.Input((4, 4, 32)))
    with pytest.raises(ValueError, match="reduction ratio r"):
        sk.squeeze_excite_block(keras.Input((4, 4, 32)), ratio)


def test_bad_options_and_shapes_raise_value_errors():
    with pytest.raises(ValueError, match="unknown gate 'swish'"):
        sk.SqueezeExcite(gate="swish")
    with pytest.raises(ValueError, match="unknown squeeze"):
        sk.SqueezeExcite(squeeze="sum")
    with pytest.raises(ValueError, match="4-d"):
        sk.SqueezeExcite(2)(keras.Input((32,)))
    with pytest.raises(ValueError, match="data_format"):
        sk.notebook_simple(data_format="NHWC")


# --- drop-in for the notebook's own code (issue 15) ----------------------------------------------------------


def _notebook_se_block(inputs, ratio=2):
    """The notebook's block written with plain Keras calls and Keras's default layer names (no senet code)."""
    filters = inputs.shape[-1]
    se = keras.layers.GlobalAveragePooling2D()(inputs)
    se = keras.layers.Reshape((1, 1, filters))(se)
    se = keras.layers.Dense(filters // ratio, activation="relu", kernel_initializer="he_normal", use_bias=False)(se)
    se = keras.layers.Dense(filters, activation="sigmoid", kernel_initializer="he_normal", use_bias=False)(se)
    return keras.layers.multiply([inputs, se])


def _notebook_model_by_hand(residual: bool, with_classifier: bool = True) -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    conv = keras.layers.Conv2D(32, (3, 3), padding="same", activation="relu")(inputs)
    x = _notebook_se_block(conv)
    if residual:
        x = keras.layers.add([x, conv])
    x = keras.layers.Conv2D(1, (1, 1), activation="relu")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x) if with_classifier else x)


def test_functional_block_defaults_to_the_notebooks_ratio_2():
    # SPEC section 1: the notebook's block uses r = 2, no bias. 32 channels: W1 32x16 + W2 16x32 = 1,024 weights.
    inputs = keras.Input((28, 28, 32))
    model = keras.Model(inputs, sk.squeeze_excite_block(inputs))
    assert model.count_params() == 2 * 32 * 16
    assert model.count_params() == keras.Model(inputs, _notebook_se_block(inputs)).count_params()


@pytest.mark.parametrize("residual", [False, True])
def test_keras_to_torch_accepts_a_model_built_with_the_notebooks_own_code(residual):
    keras_model = _notebook_model_by_hand(residual)
    assert keras_model.count_params() == 9227  # SPEC section 5
    assert not any(layer.name in ("conv", "proj", "fc") for layer in keras_model.layers)  # Keras default names
    torch_model = sk.keras_to_torch(keras_model)
    assert torch_model.senet_config["name"] == ("notebook_se_residual" if residual else "notebook_simple")
    x = torch.randn(3, 1, 28, 28)
    expected = _np(keras_model(_nhwc(x)))
    with torch.no_grad():
        got = torch.softmax(torch_model.eval()(x), dim=1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_a_notebook_model_that_ends_at_its_flatten_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="ends at its Flatten"):
        sk.keras_to_torch(_notebook_model_by_hand(False, with_classifier=False))
