"""Copy weights between the Keras notebook models and the PyTorch ones (``senet.create_model('notebook_*')``).

Layouts differ in three places, handled here for any channel count:

* Conv2D kernels: Keras (kh, kw, in, out), PyTorch (out, in, kh, kw) - independent of Keras' ``data_format``.
* SE excitation W1, W2: Keras Dense kernels (in, out); PyTorch 1x1 convolutions (out, in, 1, 1).
* The classifier after Flatten: Keras 3 always flattens in (H, W, C) order (its Flatten moves channels last
  first), PyTorch in (C, H, W) order; so the Dense kernel (H*W*C, K) is reordered, not just transposed, into
  PyTorch's Linear weight (K, C*H*W).

Biases keep their shape. The Keras models end in softmax and the PyTorch ones in logits, so after a copy
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


def _keras_se_denses(model: keras.Model) -> tuple[Any, Any]:
    """W1, W2 of the model's SE block named ``se``: a SqueezeExcite layer or a ``squeeze_excite_block``."""
    names = {layer.name for layer in model.layers}
    if "se" in names and isinstance(model.get_layer("se"), SqueezeExcite):
        block = model.get_layer("se")
        return block.fc1, block.fc2
    if {"se_fc1", "se_fc2"} <= names:
        return model.get_layer("se_fc1"), model.get_layer("se_fc2")
    raise ConfigError(f"Keras model {model.name!r} has no SE block named 'se' (expected a senet.keras notebook model)")


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
    keras_names = {layer.name for layer in keras_model.layers}
    missing = [name for name in ("conv", "proj", "flatten", "fc") if name not in keras_names]
    if missing:
        raise ConfigError(
            f"Keras model {keras_model.name!r} lacks layer(s) {', '.join(missing)}: "
            "expected senet.keras.notebook_simple() or notebook_se_residual()"
        )
    keras_residual = "residual" in keras_names
    if keras_residual != bool(getattr(torch_model, "residual", False)):
        kinds = {True: "SE-residual", False: "simple"}
        raise ConfigError(
            f"the Keras model is the {kinds[keras_residual]} notebook model but the PyTorch one is the "
            f"{kinds[bool(getattr(torch_model, 'residual', False))]} one; build matching models"
        )
    fc1, fc2 = _keras_se_denses(keras_model)
    return [
        _Pair("conv", keras_model.get_layer("conv"), torch_model.conv, "conv"),
        _Pair("se.fc1", fc1, torch_model.se.fc1, "pointwise"),
        _Pair("se.fc2", fc2, torch_model.se.fc2, "pointwise"),
        _Pair("proj", keras_model.get_layer("proj"), torch_model.proj, "conv"),
        _Pair("fc", keras_model.get_layer("fc"), torch_model.fc, "flatten_dense"),
    ]


def _flatten_chw(keras_model: keras.Model) -> tuple[int, int, int]:
    """(C, H, W) of the feature map that the Keras Flatten receives."""
    flatten = keras_model.get_layer("flatten")
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

        conv = keras_model.get_layer("conv")
        channels_last = conv.data_format == "channels_last"
        _, *dims = keras_model.inputs[0].shape
        in_chans, image_size = (dims[2], dims[0]) if channels_last else (dims[0], dims[1])
        fc1, fc2 = _keras_se_denses(keras_model)
        residual = "residual" in {layer.name for layer in keras_model.layers}
        torch_model = create_model(
            _TORCH_NAMES[residual],
            num_classes=keras_model.get_layer("fc").units,
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
