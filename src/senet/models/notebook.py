"""The Keras notebook's two 28x28x1 models (the project's starting point), in PyTorch.

Both: Conv2D(32, 3x3, same, ReLU) -> SE(r=2, no bias) -> Conv2D(1, 1x1, ReLU) -> Flatten -> Dense(10).
*notebook_se_residual* adds the SE output to its input (x = SE(x) + x) before the 1x1 conv. Parameters:
320 + 512 + 512 + 33 + 7,850 = 9,227 each. The notebook returned the Flatten as the model output by mistake;
here the classifier is the output. Like every PyTorch classifier in this package the output is logits (the
notebook's softmax lives in the loss), so ``softmax(model(x))`` equals the Keras model's output.
"""

from __future__ import annotations

import torch
from torch import nn

from senet.layers import SqueezeExcite
from senet.models.common import ClassifierNet
from senet.models.registry import register_model

__all__ = ["NotebookNet", "notebook_se_residual", "notebook_simple"]


class NotebookNet(ClassifierNet):
    """conv3x3(32) -> SE -> [+ identity] -> conv1x1(1) -> flatten -> linear(10); see the module docstring.

    The classifier reads every pixel of the 1-channel map, so the input must be exactly ``image_size`` square;
    ``num_features`` is that map's channel count (1) and ``forward_head`` flattens it (``image_size ** 2`` values,
    the ``pre_logits`` features) instead of pooling.
    Stages: ``se`` (the SE output, plus the identity in the residual model; ``filters`` channels) and ``proj_act``
    (the 1-channel map), both at full resolution.
    """

    exact_input_size = True

    def __init__(
        self,
        residual: bool = False,
        *,
        num_classes: int = 10,
        in_chans: int = 1,
        image_size: int = 28,
        filters: int = 32,
        reduction: float = 2,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.in_chans = self.check_in_chans(in_chans)
        self.image_size = image_size
        self.min_input_size = image_size
        self.default_input_size = (in_chans, image_size, image_size)
        self.conv = nn.Conv2d(in_chans, filters, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(filters, reduction, bias=False)
        self.proj = nn.Conv2d(filters, 1, 1)
        self.proj_act = nn.ReLU(inplace=True)
        self.init_head(1, num_classes, 0.0, fc_in=image_size * image_size)
        self.body = ("conv", "act", "se", "proj", "proj_act")
        self.set_stages([("se", filters, 1), ("proj_act", 1, 1)])

    def run_step(self, path: str, x: torch.Tensor) -> torch.Tensor:
        out = super().run_step(path, x)
        return out + x if path == "se" and self.residual else out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten the 1-channel map (the notebook's Flatten) and classify it."""
        x = torch.flatten(x, 1)
        return x if pre_logits else self.fc(x)


@register_model
def notebook_simple(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, reduction: float = 2):
    """The notebook's *simple* model: conv -> SE -> 1x1 conv -> classifier (9,227 parameters)."""
    return NotebookNet(False, num_classes=num_classes, in_chans=in_chans, image_size=image_size, reduction=reduction)


@register_model
def notebook_se_residual(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, reduction: float = 2):
    """The notebook's *SE-residual* model: as ``notebook_simple`` with x = SE(x) + x (9,227 parameters)."""
    return NotebookNet(True, num_classes=num_classes, in_chans=in_chans, image_size=image_size, reduction=reduction)
