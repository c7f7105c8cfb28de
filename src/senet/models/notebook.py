"""The Keras notebook's two 28x28x1 models (SPEC section 5), in PyTorch.

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
from senet.models.registry import register_model

__all__ = ["NotebookNet", "notebook_se_residual", "notebook_simple"]


class NotebookNet(nn.Module):
    """conv3x3(32) -> SE -> [+ identity] -> conv1x1(1) -> flatten -> linear(10); see the module docstring."""

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
        self.in_chans = in_chans
        self.image_size = image_size
        self.default_input_size = (in_chans, image_size, image_size)
        self.conv = nn.Conv2d(in_chans, filters, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(filters, reduction, bias=False)
        self.proj = nn.Conv2d(filters, 1, 1)
        self.proj_act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(image_size * image_size, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans or tuple(x.shape[-2:]) != (self.image_size,) * 2:
            raise ValueError(
                f"notebook model expects (N, {self.in_chans}, {self.image_size}, {self.image_size}) input, "
                f"got {tuple(x.shape)}"
            )
        x = self.act(self.conv(x))
        x = self.se(x) + x if self.residual else self.se(x)
        return self.proj_act(self.proj(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def notebook_simple(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, reduction: float = 2):
    """The notebook's *simple* model: conv -> SE -> 1x1 conv -> classifier (9,227 parameters)."""
    return NotebookNet(False, num_classes=num_classes, in_chans=in_chans, image_size=image_size, reduction=reduction)


@register_model
def notebook_se_residual(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, reduction: float = 2):
    """The notebook's *SE-residual* model: as ``notebook_simple`` with x = SE(x) + x (9,227 parameters)."""
    return NotebookNet(True, num_classes=num_classes, in_chans=in_chans, image_size=image_size, reduction=reduction)
