"""The Keras notebook's two 28x28x1 models (an SE block without and with a residual add) as Keras 3 models.

Conv2D(32, 3x3, same, ReLU) ``conv`` -> SE(r=2, no bias) ``se_*`` -> [Add ``residual``: x = SE(x) + x] ->
Conv2D(1, 1x1, ReLU) ``proj`` -> Flatten ``flatten`` -> Dense(10, softmax) ``fc``.
Parameters: 320 + 512 + 512 + 33 + 7,850 = 9,227 each. The notebook returned the Flatten as the model output by
mistake; here the classifier is. Layer names follow the PyTorch :class:`senet.models.notebook.NotebookNet`
attributes, which :mod:`senet.keras.weights` relies on.
"""

from __future__ import annotations

import keras

from senet.keras.layers import _data_format, squeeze_excite_block

__all__ = ["notebook_se_residual", "notebook_simple"]

#: Channels of the first convolution in both notebook models.
NOTEBOOK_FILTERS = 32


def _notebook_model(
    residual: bool, *, num_classes: int, in_chans: int, image_size: int, ratio: float, data_format: str | None
) -> keras.Model:
    data_format = _data_format(data_format)
    if data_format == "channels_last":
        shape = (image_size, image_size, in_chans)
    else:
        shape = (in_chans, image_size, image_size)
    inputs = keras.Input(shape, name="image")
    features = keras.layers.Conv2D(
        NOTEBOOK_FILTERS, 3, padding="same", activation="relu", data_format=data_format, name="conv"
    )(inputs)
    x = squeeze_excite_block(features, ratio, name="se", data_format=data_format)
    if residual:
        x = keras.layers.Add(name="residual")([x, features])
    x = keras.layers.Conv2D(1, 1, activation="relu", data_format=data_format, name="proj")(x)
    x = keras.layers.Flatten(data_format=data_format, name="flatten")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="fc")(x)
    name = "notebook_se_residual" if residual else "notebook_simple"
    return keras.Model(inputs, outputs, name=name)


def notebook_simple(
    num_classes: int = 10, in_chans: int = 1, image_size: int = 28, ratio: float = 2, data_format: str | None = None
) -> keras.Model:
    """The notebook's *simple* model: conv -> SE -> 1x1 conv -> softmax classifier (9,227 parameters).

    ``data_format=None`` follows ``keras.config.image_data_format()`` (NHWC input (N, 28, 28, 1) by default).
    """
    return _notebook_model(
        False, num_classes=num_classes, in_chans=in_chans, image_size=image_size, ratio=ratio, data_format=data_format
    )


def notebook_se_residual(
    num_classes: int = 10, in_chans: int = 1, image_size: int = 28, ratio: float = 2, data_format: str | None = None
) -> keras.Model:
    """The notebook's *SE-residual* model: as :func:`notebook_simple` with x = SE(x) + x (9,227 parameters)."""
    return _notebook_model(
        True, num_classes=num_classes, in_chans=in_chans, image_size=image_size, ratio=ratio, data_format=data_format
    )
