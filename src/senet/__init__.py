"""senet - Squeeze-and-Excitation networks in PyTorch (Hu, Shen, Albanie, Sun, Wu; arXiv 1709.01507).

The block and its variants (:mod:`senet.layers`), the paper's model families (:mod:`senet.models`), parameter and
multiply-add counts with the paper's convention (:mod:`senet.complexity`).
"""

from senet.analysis.surgery import remove_se
from senet.complexity import MACS_CONVENTION, count_params, model_complexity
from senet.data import DatasetBundle, load_dataset, make_loader
from senet.errors import ConfigError, SenetError
from senet.interop import convert_weights, export_model
from senet.io import load_model, save_model
from senet.layers import (
    ECA,
    AttentionBlock,
    ChannelSpatialSE,
    EffectiveSE,
    GatherExcite,
    SpatialSE,
    SqueezeExcite,
    create_attn,
)
from senet.models import create_model, list_models, named_se_blocks, register_model
from senet.models.fold import fold_batchnorm
from senet.models.retrofit import add_se

__version__ = "0.1.0"

__all__ = [
    "ECA",
    "MACS_CONVENTION",
    "AttentionBlock",
    "ChannelSpatialSE",
    "ConfigError",
    "DatasetBundle",
    "EffectiveSE",
    "GatherExcite",
    "SenetError",
    "SpatialSE",
    "SqueezeExcite",
    "add_se",
    "convert_weights",
    "count_params",
    "create_attn",
    "create_model",
    "export_model",
    "fold_batchnorm",
    "list_models",
    "load_dataset",
    "load_model",
    "make_loader",
    "model_complexity",
    "named_se_blocks",
    "register_model",
    "remove_se",
    "save_model",
]
