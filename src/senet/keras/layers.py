"""The SE block for Keras 3 (Hu et al., arXiv 1709.01507, section 3), as a layer and as the notebook's function.

For a feature map U (N, H, W, C) in Keras' default ``channels_last`` layout (or (N, C, H, W) with
``channels_first``):

* squeeze:    z = F_sq(U), global pooling over H x W           -> (N, C)
* excitation: s = sigma(W2 . delta(W1 . z)), W1: C -> C // r, W2: C // r -> C  (Dense layers ``fc1``, ``fc2``)
* scale:      out = U * s, broadcast over H x W

The notebook's choices are the defaults: delta = ReLU, sigma = sigmoid, no biases, He-normal initialisation.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from senet.errors import ConfigError

__all__ = ["SqueezeExcite", "excitation_model", "squeeze_excite_block"]

#: Gates sigma of Table 12 (plus the hard sigmoid), as Keras activation names - the same set as senet.layers.GATES.
KERAS_GATES = ("sigmoid", "tanh", "relu", "hard_sigmoid")
#: Squeeze operators F_sq of Table 11 and the Keras pooling layer for each.
KERAS_SQUEEZES = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}


def _data_format(data_format: str | None) -> str:
    """``None`` -> Keras' configured image data format; otherwise check the value."""
    if data_format is None:
        return keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ConfigError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
    return data_format


def _check_ratio(ratio: Any) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio >= 1:
        raise ConfigError(f"reduction ratio r must be a number >= 1, got {ratio!r}")


def _channels(shape: Any, data_format: str, owner: str) -> int:
    """C of a 4-d feature-map shape, with a readable error for anything else."""
    shape = tuple(shape)
    layout = "(N, H, W, C)" if data_format == "channels_last" else "(N, C, H, W)"
    if len(shape) != 4:
        raise ConfigError(f"{owner} expects a 4-d {layout} feature map ({data_format}), got shape {shape}")
    channels = shape[-1] if data_format == "channels_last" else shape[1]
    if channels is None:
        raise ConfigError(f"{owner} needs a known channel count C, got shape {shape}")
    return int(channels)


def hidden_width(channels: int, ratio: float) -> int:
    """C // r, the width of W1; ``ValueError`` unless 1 <= r <= C (the PyTorch block's rule)."""
    _check_ratio(ratio)
    if ratio > channels:
        raise ConfigError(f"reduction ratio r={ratio} is larger than channels C={channels}: C/r would be below 1")
    return max(1, int(channels // ratio))


def _broadcast_shape(channels: int, data_format: str) -> tuple[int, int, int]:
    return (1, 1, channels) if data_format == "channels_last" else (channels, 1, 1)


@keras.saving.register_keras_serializable(package="senet")
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-and-Excitation layer, arXiv 1709.01507; Keras counterpart of :class:`senet.layers.SqueezeExcite`.

    Args:
        ratio: the reduction ratio r (>= 1 and <= C); W1 has ``C // r`` units. The paper uses 16, the notebook 2.
        use_bias: biases on W1 and W2 (the notebook and the v4 ablations: none; the released models: yes).
        squeeze: F_sq - ``"avg"`` (global average pooling, the paper's choice) or ``"max"`` (Table 11).
        gate: sigma - ``"sigmoid"`` (default), ``"tanh"``, ``"relu"`` (Table 12) or ``"hard_sigmoid"``.
        kernel_initializer: initialiser of W1 and W2 (the notebook: He normal).
        data_format: ``"channels_last"`` (NHWC, Keras' default) or ``"channels_first"``; ``None`` follows
            ``keras.config.image_data_format()``.

    Sublayers are ``squeeze`` (pooling), ``fc1`` (W1 with delta = ReLU) and ``fc2`` (W2 with the gate sigma), so the
    output of ``fc2`` is the excitation s, shape (N, C); :meth:`excitation` computes it and
    :func:`excitation_model` wraps it into a model.
    """

    def __init__(
        self,
        ratio: float = 16,
        *,
        use_bias: bool = False,
        squeeze: str = "avg",
        gate: str = "sigmoid",
        kernel_initializer: Any = "he_normal",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_ratio(ratio)
        if squeeze not in KERAS_SQUEEZES:
            raise ConfigError(f"unknown squeeze {squeeze!r}; choose one of {', '.join(KERAS_SQUEEZES)}")
        if gate not in KERAS_GATES:
            raise ConfigError(f"unknown gate {gate!r}; choose one of {', '.join(KERAS_GATES)}")
        self.ratio = ratio
        self.use_bias = bool(use_bias)
        self.squeeze = squeeze
        self.gate = gate
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.data_format = _data_format(data_format)
        self.channels: int | None = None

    def build(self, input_shape: Any) -> None:
        channels = _channels(input_shape, self.data_format, f"SqueezeExcite {self.name!r}")
        hidden = hidden_width(channels, self.ratio)
        self.channels = channels
        self.pool = KERAS_SQUEEZES[self.squeeze](data_format=self.data_format, name="squeeze")
        self.fc1 = keras.layers.Dense(
            hidden,
            activation="relu",
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer.clone(),
            name="fc1",
        )
        self.fc2 = keras.layers.Dense(
            channels,
            activation=self.gate,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer.clone(),
            name="fc2",
        )
        self.fc1.build((None, channels))
        self.fc2.build((None, hidden))

    def excitation(self, inputs: Any) -> Any:
        """s = sigma(W2 . delta(W1 . F_sq(U))), shape (N, C); also works on a symbolic Keras tensor."""
        return self.fc2(self.fc1(self.pool(inputs)))

    def call(self, inputs: Any) -> Any:
        s = ops.reshape(self.excitation(inputs), (-1, *_broadcast_shape(self.channels, self.data_format)))
        return ops.multiply(inputs, ops.cast(s, inputs.dtype))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            ratio=self.ratio,
            use_bias=self.use_bias,
            squeeze=self.squeeze,
            gate=self.gate,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            data_format=self.data_format,
        )
        return config


def squeeze_excite_block(
    x: Any, ratio: float = 2, name: str | None = None, *, use_bias: bool = False, data_format: str | None = None
) -> Any:
    """The notebook's functional SE block: return U * s for the feature map ``x`` (Keras tensor or array).

    Built from built-in layers named ``{name}_squeeze`` (global average pooling), ``{name}_fc1`` (Dense C // r,
    ReLU), ``{name}_fc2`` (Dense C, sigmoid: its output is the excitation s, shape (N, C)), ``{name}_reshape`` and
    ``{name}_scale`` (Multiply); both Dense layers are He-normal initialised. With ``name=None`` Keras picks the
    names. ``ratio`` is r: ``ValueError`` unless 1 <= r <= C. The defaults are the notebook's (r = 2, no
    biases, He-normal), so code written for the notebook builds the same block; the paper's models use r = 16.
    """
    data_format = _data_format(data_format)
    channels = _channels(x.shape, data_format, "squeeze_excite_block")
    hidden = hidden_width(channels, ratio)

    def named(part: str) -> str | None:
        return None if name is None else f"{name}_{part}"

    s = keras.layers.GlobalAveragePooling2D(data_format=data_format, name=named("squeeze"))(x)
    s = keras.layers.Dense(
        hidden, activation="relu", use_bias=use_bias, kernel_initializer="he_normal", name=named("fc1")
    )(s)
    s = keras.layers.Dense(
        channels, activation="sigmoid", use_bias=use_bias, kernel_initializer="he_normal", name=named("fc2")
    )(s)
    s = keras.layers.Reshape(_broadcast_shape(channels, data_format), name=named("reshape"))(s)
    return keras.layers.Multiply(name=named("scale"))([x, s])


def se_block_names(model: keras.Model) -> list[str]:
    """Names of the SE blocks in ``model``: :class:`SqueezeExcite` layers and ``squeeze_excite_block`` prefixes."""
    names = [layer.name for layer in model.layers if isinstance(layer, SqueezeExcite)]
    layer_names = {layer.name for layer in model.layers}
    for layer_name in sorted(layer_names):
        prefix = layer_name.removesuffix("_fc2")
        if prefix != layer_name and f"{prefix}_fc1" in layer_names and f"{prefix}_squeeze" in layer_names:
            names.append(prefix)
    return names


def excitation_model(model: keras.Model, name: str = "se") -> keras.Model:
    """A model with ``model``'s inputs whose output is the excitation s (N, C) of the SE block called ``name``.

    ``name`` is a :class:`SqueezeExcite` layer's name or the ``name`` given to :func:`squeeze_excite_block`
    (the notebook models use ``"se"``). The new model shares ``model``'s weights.
    """
    layer_names = {layer.name for layer in model.layers}
    if name in layer_names and isinstance(model.get_layer(name), SqueezeExcite):
        layer = model.get_layer(name)
        output = layer.excitation(layer.input)
    elif f"{name}_fc2" in layer_names:
        output = model.get_layer(f"{name}_fc2").output
    else:
        known = ", ".join(se_block_names(model)) or "none"
        raise ConfigError(f"no SE block named {name!r} in Keras model {model.name!r}; its SE blocks: {known}")
    return keras.Model(model.input, output, name=f"{model.name}_{name}_excitation")
