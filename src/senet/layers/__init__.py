"""Attention layers: the SE block with every option the paper ablates, and its later variants."""

from senet.layers.factory import ATTN_LAYERS, AttnFactory, create_attn, make_attn_factory, resolve_attn
from senet.layers.squeeze_excite import GATES, SQUEEZES, AttentionBlock, SqueezeExcite
from senet.layers.variants import ECA, ChannelSpatialSE, EffectiveSE, GatherExcite, SpatialSE

__all__ = [
    "ATTN_LAYERS",
    "ECA",
    "GATES",
    "SQUEEZES",
    "AttentionBlock",
    "AttnFactory",
    "ChannelSpatialSE",
    "EffectiveSE",
    "GatherExcite",
    "SpatialSE",
    "SqueezeExcite",
    "create_attn",
    "make_attn_factory",
    "resolve_attn",
]
