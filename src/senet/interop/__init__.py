"""Interoperability: weights people already have (timm, the Caffe port) and deployment formats (ONNX, TorchScript).

* :func:`convert_weights` (also ``convert``) - a timm, Caffe-port or torchvision state dict -> our model, its layout
  read from the keys (:func:`detect_layout`), checked strictly;
  :func:`save_converted` writes it so :func:`senet.load_model` rebuilds it.
* :func:`export_model` - a model or saved-model folder -> ONNX or TorchScript, checked against PyTorch.

The Keras 3 port of the notebook lives in :mod:`senet.keras`.
"""

from senet.interop.convert import ConversionReport, convert_weights, infer_model_name, save_converted
from senet.interop.export import FORMATS, ExportResult, export_model, onnx_op_types
from senet.interop.layouts import LAYOUTS, SourceLayout, detect_layout

#: Short name used in the docs: ``senet.interop.convert(state_dict_or_path, source=..., model=...)``.
convert = convert_weights

__all__ = ["FORMATS", "LAYOUTS", "ConversionReport", "ExportResult", "SourceLayout", "convert", "convert_weights",
           "detect_layout", "export_model", "infer_model_name", "onnx_op_types", "save_converted"]
