"""Stable names for SE blocks: ``SE_<stage>_<block>`` as in the paper's section 7.2.

ResNet-style models (ours, torchvision's after :func:`senet.add_se`, timm's) keep their residual stages in
``layer1``..``layerK``. The stem is stage 1, so ``layer1`` is stage 2 (conv2_x) and block ``layerI.J`` is named
``SE_{I+1}_{J+1}``. An attention block anywhere else keeps its module path as its name.
"""

from __future__ import annotations

import re

from torch import nn

from senet.layers import AttentionBlock

__all__ = ["named_se_blocks", "parse_se_block_name", "se_block_name"]

_RESNET_PATH = re.compile(r"^layer(\d+)\.(\d+)(?:\.|$)")
_PAPER_NAME = re.compile(r"^SE_(\d+)_(\d+)$")


def se_block_name(path: str) -> str:
    """Map a module path to the paper's block name (``layer2.3.se`` -> ``SE_3_4``); other paths are kept."""
    m = _RESNET_PATH.match(path)
    if m is None:
        return path
    return f"SE_{int(m.group(1)) + 1}_{int(m.group(2)) + 1}"


def parse_se_block_name(name: str) -> tuple[int, int] | None:
    """(stage, block) of a paper-style name (``SE_5_2`` -> ``(5, 2)``), or None for any other name (a module path)."""
    m = _PAPER_NAME.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def named_se_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """Every outermost attention block of ``model``, in forward order, keyed by its paper-style name.

    Nested blocks (scSE's inner cSE/sSE) are not listed separately. If two blocks would share a name (more than
    one attention module in one residual unit), both fall back to their module paths.
    """
    found: list[tuple[str, nn.Module]] = []
    for path, module in model.named_modules():
        if isinstance(module, AttentionBlock) and not any(path.startswith(p + ".") for p, _ in found):
            found.append((path, module))
    names = [se_block_name(p) for p, _ in found]
    out: dict[str, nn.Module] = {}
    for (path, module), name in zip(found, names):
        out[path if names.count(name) > 1 else name] = module
    return out
