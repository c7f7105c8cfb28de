"""Copy weights between the Keras notebook models and the PyTorch ones (``senet.create_model('notebook_*')``).

Layouts differ in three places, handled here for any channel count:

* Conv2D kernels: Keras (kh, kw, in, out), PyTorch (out, in, kh, kw) - independent of Keras' ``data_format``.
* SE excitation W1, W2: Keras Dense kernels (in, out); PyTorch 1x1 convolutions (out, in, 1, 1).
* The classifier after Flatten: Keras 3 always flattens in (H, W, C) order (its Flatten moves channels last
  first), PyTorch in (C, H, W) order; so the Dense kernel (H*W*C, K) is reordered, not just transposed, into
  PyTorch's Linear weight (K, C*H*W).

Keras layers are matched by the names :mod:`senet.keras.models` gives them, or, for a model built with the
notebook's own code (Keras's default names), by their order and type. Biases keep their shape. The Keras models end in softmax and the PyTorch ones in logits, so after a copy
``softmax(torch_model(x_nchw))`` equals ``keras_model(x_nhwc)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import torch
from torch import nn

from senet.errors import ConfigError
from senet.keras.layers import SqueezeExcite
from senet.keras.models import notebook_se_residual, notebook_simple

__all__ = ["keras_to_torch", "torch_to_keras"]

_TORCH_NAMES = ("notebook_simple", "notebook_se_residual")


@dataclass
class _Pair:
    """One Keras layer and the PyTorch module holding the same weights; ``kind`` says how the kernel is laid out."""

    label: str  # the PyTorch module path, used in messages
    keras_layer: Any
    torch_module: nn.Module
    kind: str  # "conv" | "pointwise" | "flatten_dense"


def _notebook_layers(model: keras.Model) -> dict[str, Any]:
    """The Keras layers playing each part of a notebook model: ``conv``, ``fc1``, ``fc2``, ``proj``, ``flatten``,
    ``fc`` and (SE-residual only) ``residual``.

    Models from :func:`senet.keras.notebook_simple` are found by their layer names. A model built with the
    notebook's own code has Keras's default names (``conv2d``, ``dense_1``, ...), so it is read by structure: in
    layer order, two Conv2D (conv, proj), the SE block's two Dense layers (or one :class:`SqueezeExcite`), one
    Flatten, then the classifier Dense, and an Add for the residual model.
    """
    names = {layer.name for layer in model.layers}
    if {"conv", "proj", "flatten", "fc"} <= names:
        found = {role: model.get_layer(role) for role in ("conv", "proj", "flatten", "fc")}
        if "se" in names and isinstance(model.get_layer("se"), SqueezeExcite):
            found["fc1"], found["fc2"] = model.get_layer("se").fc1, model.get_layer("se").fc2
        elif {"se_fc1", "se_fc2"} <= names:
            found["fc1"], found["fc2"] = model.get_layer("se_fc1"), model.get_layer("se_fc2")
        else:
            raise ConfigError(f"Keras model {model.name!r} has no SE block named 'se' (expected a senet.keras "
                              f"notebook model)")
        if "residual" in names:
            found["residual"] = model.get_layer("residual")
        return found
    return _layers_by_structure(model)


def _layers_by_structure(model: keras.Model) -> dict[str, Any]:
    layers = model.layers
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    flattens = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Flatten)]
    se_layers = [layer for layer in layers if isinstance(layer, SqueezeExcite)]
    adds = [layer for layer in layers if isinstance(layer, keras.layers.Add)]
    expected = ("the notebook's layers: Conv2D, the SE block (GlobalAveragePooling2D, Dense, Dense, Multiply), "
                "[Add,] Conv2D 1x1, Flatten, Dense classifier")
    if len(convs) != 2 or len(flattens) != 1 or len(adds) > 1 or len(se_layers) > 1:
        raise ConfigError(f"Keras model {model.name!r} is not a notebook model: expected {expected}; it has "
                          f"{len(convs)} Conv2D, {len(flattens)} Flatten, {len(adds)} Add")
    before = [layer for layer in layers[: flattens[0]] if isinstance(layer, keras.layers.Dense)]
    after = [layer for layer in layers[flattens[0]:] if isinstance(layer, keras.layers.Dense)]
    if not after:
        raise ConfigError(f"Keras model {model.name!r} ends at its Flatten, without the Dense classifier (the "
                          f"notebook passed the Flatten as the model output by mistake): build the model with the "
                          f"classifier's output, keras.Model(inputs, outputs)")
    se_denses = (se_layers[0].fc1, se_layers[0].fc2) if se_layers else tuple(before)
    if len(se_denses) != 2 or len(after) != 1:
        raise ConfigError(f"Keras model {model.name!r} is not a notebook model: expected {expected}; it has "
                          f"{len(before) + len(after)} Dense layers")
    found = {"conv": convs[0], "proj": convs[1], "fc1": se_denses[0], "fc2": se_denses[1],
             "flatten": layers[flattens[0]], "fc": after[0]}
    if adds:
        found["residual"] = adds[0]
    return found


def _check_torch_model(torch_model: nn.Module) -> None:
    needed = ("conv", "se", "proj", "fc")
    if not all(hasattr(torch_model, attr) for attr in needed) or not hasattr(torch_model.se, "fc1"):
        raise ConfigError(
            f"expected a PyTorch notebook model (senet.create_model('notebook_simple' or 'notebook_se_residual')), "
            f"got {type(torch_model).__name__}"
        )


def _pairs(keras_model: keras.Model, torch_model: nn.Module) -> list[_Pair]:
    """Match the layers of the two notebook models, refusing anything else with a clear message."""
    _check_torch_model(torch_model)
    layers = _notebook_layers(keras_model)
    keras_residual = "residual" in layers
    if keras_residual != bool(getattr(torch_model, "residual", False)):
        kinds = {True: "SE-residual", False: "simple"}
        raise ConfigError(
            f"the Keras model is the {kinds[keras_residual]} notebook model but the PyTorch one is the "
            f"{kinds[bool(getattr(torch_model, 'residual', False))]} one; build matching models"
        )
    return [
        _Pair("conv", layers["conv"], torch_model.conv, "conv"),
        _Pair("se.fc1", layers["fc1"], torch_model.se.fc1, "pointwise"),
        _Pair("se.fc2", layers["fc2"], torch_model.se.fc2, "pointwise"),
        _Pair("proj", layers["proj"], torch_model.proj, "conv"),
        _Pair("fc", layers["fc"], torch_model.fc, "flatten_dense"),
    ]


def _flatten_chw(keras_model: keras.Model) -> tuple[int, int, int]:
    """(C, H, W) of the feature map that the Keras Flatten receives."""
    flatten = _notebook_layers(keras_model)["flatten"]
    _, *dims = flatten.input.shape
    if flatten.data_format == "channels_last":
        height, width, channels = dims
    else:
        channels, height, width = dims
    return int(channels), int(height), int(width)


def _keras_kernel_shape(pair: _Pair, torch_shape: tuple[int, ...], chw: tuple[int, int, int]) -> tuple[int, ...]:
    """The Keras kernel shape that matches a PyTorch weight shape (or raises for an impossible one)."""
    if pair.kind == "conv":
        out_ch, in_ch, kh, kw = torch_shape
        return (kh, kw, in_ch, out_ch)
    if pair.kind == "pointwise":
        return (int(np.prod(torch_shape[1:])), torch_shape[0])
    if torch_shape[1] != int(np.prod(chw)):
        raise ConfigError(
            f"PyTorch fc.weight has {torch_shape[1]} inputs but the Keras Flatten gives C*H*W = {int(np.prod(chw))}"
        )
    return (torch_shape[1], torch_shape[0])


def _to_keras_kernel(pair: _Pair, weight: np.ndarray, chw: tuple[int, int, int]) -> np.ndarray:
    if pair.kind == "conv":
        return weight.transpose(2, 3, 1, 0)
    if pair.kind == "pointwise":
        return weight.reshape(weight.shape[0], -1).T
    channels, height, width = chw
    classes = weight.shape[0]
    return weight.reshape(classes, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, classes)


def _to_torch_weight(pair: _Pair, kernel: np.ndarray, torch_shape: tuple[int, ...], chw: tuple[int, int, int]):
    if pair.kind == "conv":
        return kernel.transpose(3, 2, 0, 1)
    if pair.kind == "pointwise":
        return kernel.T.reshape(torch_shape)
    channels, height, width = chw
    classes = kernel.shape[1]
    return kernel.reshape(height, width, channels, classes).transpose(3, 2, 0, 1).reshape(classes, -1)


def _check_pairs(pairs: list[_Pair], chw: tuple[int, int, int]) -> None:
    """Raise one error listing every kernel shape or bias mismatch before anything is copied."""
    problems = []
    for pair in pairs:
        keras_weights = pair.keras_layer.get_weights()
        torch_shape = tuple(pair.torch_module.weight.shape)
        try:
            expected = _keras_kernel_shape(pair, torch_shape, chw)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if tuple(keras_weights[0].shape) != expected:
            problems.append(
                f"{pair.label}: PyTorch weight {torch_shape} needs a Keras kernel {expected}, "
                f"Keras layer {pair.keras_layer.name!r} has {tuple(keras_weights[0].shape)}"
            )
        torch_bias = pair.torch_module.bias is not None
        keras_bias = len(keras_weights) > 1
        if torch_bias != keras_bias:
            problems.append(
                f"{pair.label}: bias {'present' if torch_bias else 'absent'} in PyTorch but "
                f"{'present' if keras_bias else 'absent'} in Keras layer {pair.keras_layer.name!r}"
            )
    if problems:
        raise ConfigError("Keras and PyTorch notebook models do not match: " + "; ".join(problems))


def _torch_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


def _ratio(channels: int, hidden: int) -> float:
    """A reduction ratio r with C // r == hidden (an int when it divides evenly, so configs stay tidy)."""
    return channels // hidden if channels % hidden == 0 else channels / hidden


def torch_to_keras(torch_model: nn.Module, keras_model: keras.Model | None = None) -> keras.Model:
    """Copy a PyTorch notebook model's weights into ``keras_model`` (built to match when ``None``); return it.

    Raises ``ValueError`` listing every mismatch (model kind, kernel shapes, biases) before copying anything.
    """
    if keras_model is None:
        _check_torch_model(torch_model)
        build = notebook_se_residual if getattr(torch_model, "residual", False) else notebook_simple
        keras_model = build(
            num_classes=torch_model.fc.out_features,
            in_chans=torch_model.conv.in_channels,
            image_size=torch_model.image_size,
            ratio=_ratio(torch_model.se.channels, torch_model.se.rd_channels),
        )
    pairs = _pairs(keras_model, torch_model)
    chw = _flatten_chw(keras_model)
    _check_pairs(pairs, chw)
    for pair in pairs:
        current = pair.keras_layer.get_weights()
        arrays = [_to_keras_kernel(pair, _torch_array(pair.torch_module.weight), chw)]
        if pair.torch_module.bias is not None:
            arrays.append(_torch_array(pair.torch_module.bias))
        pair.keras_layer.set_weights([a.astype(c.dtype) for a, c in zip(arrays, current)])
    return keras_model


def keras_to_torch(keras_model: keras.Model, torch_model: nn.Module | None = None) -> nn.Module:
    """Copy a Keras notebook model's weights into ``torch_model`` (built to match when ``None``); return it.

    Raises ``ValueError`` listing every mismatch (model kind, kernel shapes, biases) before copying anything.
    """
    if torch_model is None:
        from senet.models import create_model

        layers = _notebook_layers(keras_model)
        channels_last = layers["conv"].data_format == "channels_last"
        _, *dims = keras_model.inputs[0].shape
        in_chans, image_size = (dims[2], dims[0]) if channels_last else (dims[0], dims[1])
        fc1, fc2 = layers["fc1"], layers["fc2"]
        residual = "residual" in layers
        torch_model = create_model(
            _TORCH_NAMES[residual],
            num_classes=layers["fc"].units,
            in_chans=int(in_chans),
            image_size=int(image_size),
            reduction=_ratio(fc2.units, fc1.units),
        )
    pairs = _pairs(keras_model, torch_model)
    chw = _flatten_chw(keras_model)
    _check_pairs(pairs, chw)
    with torch.no_grad():
        for pair in pairs:
            kernel, *bias = pair.keras_layer.get_weights()
            weight = pair.torch_module.weight
            new = _to_torch_weight(pair, np.asarray(kernel), tuple(weight.shape), chw)
            weight.copy_(torch.from_numpy(np.ascontiguousarray(new)).to(weight.dtype))
            if bias:
                pair.torch_module.bias.copy_(torch.from_numpy(np.asarray(bias[0])).to(weight.dtype))
    return torch_model
