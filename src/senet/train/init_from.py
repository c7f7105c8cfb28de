"""``init_from``: start a run from weights the user already has.

A source is a run folder or saved-model folder (``model.safetensors`` + ``config.json``), a senet ``.safetensors``
file that names its architecture, or a peer checkpoint (timm, the Caffe port, torchvision), converted on the way in
by :func:`senet.interop.convert_weights` - its layout is read from the keys, and the architecture options that make
our model compute the peer's function (stride placement, stem pooling, SE width) become the run's model options.

Loading (:func:`load_initial_weights`) is strict except where fine-tuning needs it not to be:

* every tensor of the model found in the source with the same shape is loaded;
* the classifier (``fc``) is re-initialised when the class count differs (the source's head is skipped);
* SE blocks the source lacks (a plain ResNet into an SE-ResNet) start as the identity
  (:func:`senet.models.se_init.init_se_identity_`), so the network computes the source's function at step 0;
* a single-channel stem fed by a three-channel source takes the sum of the colour filters, the response of the
  pretrained filter to a grey image;
* anything else - a tensor the model lacks, a shape mismatch outside the head - raises one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.errors import SenetError
from senet.models.common import classifier_of

__all__ = ["InitReport", "SourceWeights", "load_initial_weights", "read_source", "source_model_args"]

#: Build options that the data decides, never the source.
_DATA_KWARGS = ("num_classes", "in_chans", "image_size")


@dataclass
class SourceWeights:
    """Weights to start from, in our key names, with the architecture they belong to."""

    path: str
    layout: str
    model: str
    kwargs: dict[str, Any]
    state: dict[str, torch.Tensor]


@dataclass
class InitReport:
    """What :func:`load_initial_weights` did, tensor names by outcome."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    se_identity: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"loaded {len(self.loaded)}", f"re-initialised {len(self.reinitialised)}",
                 f"skipped {len(self.skipped)}"]
        if self.se_identity:
            parts.append(f"{len(self.se_identity)} new SE tensors set to the identity")
        if self.adapted:
            parts.append(f"adapted {len(self.adapted)} ({', '.join(self.adapted)}: colour filters summed)")
        return f"init from {self.source} ({self.layout} layout): tensors " + ", ".join(parts)


def read_source(path: str | Path) -> SourceWeights:
    """The weights at ``path`` in our key names (see the module docstring for what ``path`` may be)."""
    from senet.interop.convert import convert_weights
    from senet.io import read_config, read_state_dict

    path = Path(path)
    if not path.exists():
        raise SenetError(f"init_from: no such file or folder: {path}")
    entry = None
    if path.is_dir() or path.suffix == ".safetensors" or path.name == "config.json":  # .pth/.bin: never ours
        try:
            entry = read_config(path)["model"]
        except SenetError:
            entry = None
    if entry is not None:
        return SourceWeights(str(path), "senet", entry["name"], dict(entry["kwargs"]), dict(read_state_dict(path)))
    if path.is_dir():
        raise SenetError(f"init_from: {path} is a folder without a senet model (model.safetensors + config.json)")
    model, report = convert_weights(path)
    return SourceWeights(str(path), report.source, report.model, dict(report.kwargs), model.state_dict())


def source_model_args(source: SourceWeights) -> dict[str, Any]:
    """The source's architecture options, less those the data decides (classes, channels, image size)."""
    return {k: v for k, v in source.kwargs.items() if k not in _DATA_KWARGS}


def _head_prefix(model: nn.Module) -> str | None:
    """State-dict prefix of the classifier: ``get_classifier()`` when the model has it, else ``fc``."""
    head = classifier_of(model)
    for name, module in model.named_modules():
        if module is head and name:
            return name
    return None


def _se_blocks(model: nn.Module) -> dict[str, nn.Module]:
    from senet.layers import AttentionBlock

    return {name: m for name, m in model.named_modules() if isinstance(m, AttentionBlock)}


def _under(key: str, prefix: str | None) -> bool:
    return prefix is not None and (key == prefix or key.startswith(prefix + "."))


def load_initial_weights(model: nn.Module, source: SourceWeights) -> InitReport:
    """Fill ``model`` from ``source`` as the module docstring says; returns the report, raises one line on a
    mismatch it cannot explain (nothing is changed then)."""
    own = model.state_dict()
    src = source.state
    head = _head_prefix(model)
    se_blocks = _se_blocks(model)
    report = InitReport(source=source.path, layout=source.layout)
    new_se = {name for name in se_blocks if not any(_under(k, name) for k in src)}
    updates: dict[str, torch.Tensor] = {}
    problems = []
    for key, tensor in own.items():
        if key in src and src[key].shape == tensor.shape:
            updates[key] = src[key]
            report.loaded.append(key)
        elif _under(key, head) and (key not in src or src[key].dim() == tensor.dim()):
            report.reinitialised.append(key)
        elif any(_under(key, name) for name in new_se):
            report.se_identity.append(key)
        elif key in src and _is_grey_stem(key, src[key], tensor, model):
            updates[key] = src[key].sum(dim=1, keepdim=True)
            report.adapted.append(key)
        elif key.endswith("num_batches_tracked"):
            report.reinitialised.append(key)
        elif key in src:
            problems.append(f"{key} has shape {tuple(src[key].shape)} in the source, {tuple(tensor.shape)} here")
        else:
            problems.append(f"{key} is missing from the source")
    for key in src:
        if key not in own:
            problems.append(f"{key} of the source has no place in the model")
        elif key in report.reinitialised and _under(key, head):
            report.skipped.append(key)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SenetError(f"init_from {source.path} ({source.model}, {source.layout} layout) does not fit the model: "
                         f"{problems[0]}{more}; pick the matching --model, or a source of the same family")
    model.load_state_dict(updates, strict=False)
    if new_se:
        from senet.models.se_init import init_se_identity_

        init_se_identity_(model, [se_blocks[name] for name in sorted(new_se)])
    return report


def _is_grey_stem(key: str, src: torch.Tensor, own: torch.Tensor, model: nn.Module) -> bool:
    """The first convolution's weight, three colour channels in the source and one in the model."""
    first_conv = next((name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    return (key == f"{first_conv}.weight" and src.dim() == 4 and src.shape[1] == 3 and own.shape[1] == 1
            and src.shape[0] == own.shape[0] and src.shape[2:] == own.shape[2:])
