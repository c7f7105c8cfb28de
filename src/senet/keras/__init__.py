"""The Keras notebook's SE API on Keras 3 (optional extra: ``pip install 'senet[keras]'``).

* :class:`SqueezeExcite` - a serialisable Keras layer: squeeze (global pooling), excitation
  s = sigma(W2 . delta(W1 . z)), scale U * s (Hu et al., arXiv 1709.01507, section 3).
* :func:`squeeze_excite_block` - the notebook's functional block, built from named built-in layers.
* :func:`notebook_simple`, :func:`notebook_se_residual` - the notebook's two 28x28x1 models (9,227 parameters).
* :func:`torch_to_keras`, :func:`keras_to_torch` - copy weights between these and ``senet.create_model``'s
  PyTorch versions; afterwards ``softmax(torch_model(x))`` equals the Keras model's output.
* :func:`excitation_model` - a Keras model that returns the excitations s of one named SE block.

Works on any Keras 3 backend (jax, tensorflow, torch). Nothing else in ``senet`` imports Keras.
"""

from __future__ import annotations

from senet._extras import install_command

_INSTALL_HINT = f"senet.keras needs Keras 3, part of the 'keras' extra: {install_command('keras')}"

try:
    import keras as _keras
except ModuleNotFoundError as _exc:  # keras itself missing, or the backend keras is configured to use
    if _exc.name is None or _exc.name == "keras" or _exc.name.startswith("keras."):
        raise ImportError(_INSTALL_HINT) from _exc
    raise ImportError(
        f"Keras is installed but its backend could not be imported (missing module {_exc.name!r}); install that "
        "backend or pick another one before importing keras, e.g. KERAS_BACKEND=torch (torch is a senet dependency)"
    ) from _exc

if int(_keras.__version__.split(".")[0]) < 3:
    raise ImportError(f"{_INSTALL_HINT} (found keras {_keras.__version__}, which is Keras 2)")

from senet.keras.layers import SqueezeExcite, excitation_model, squeeze_excite_block
from senet.keras.models import notebook_se_residual, notebook_simple
from senet.keras.weights import keras_to_torch, torch_to_keras

__all__ = [
    "SqueezeExcite",
    "excitation_model",
    "keras_to_torch",
    "notebook_se_residual",
    "notebook_simple",
    "squeeze_excite_block",
    "torch_to_keras",
]
