"""Load weights that people already have - timm checkpoints and the Caffe port - into our models.

``convert_weights(state_dict_or_path, source, model)`` renames the keys (:mod:`senet.interop.layouts`), builds our
model with the options that reproduce the source architecture exactly (stride placement, stem pooling, SE hidden
width, number of classes, input channels) and loads the tensors strictly: a missing or unexpected key or a shape
mismatch raises one :class:`~senet.errors.SenetError` that lists them. The model is stored with its build config,
so :func:`save_converted` (or :func:`senet.io.save_model`) writes a file that :func:`senet.load_model` rebuilds.

Files are read through :func:`senet.io.read_state_dict`: ``.safetensors``, or ``.pth``/``.pt``/``.bin`` with
``torch.load(weights_only=True)``, so a pickle that would run code is refused, never executed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.errors import ConfigError, SenetError
from senet.interop.layouts import (
    LAYOUTS,
    STAGE_DEPTHS,
    SourceLayout,
    check_layout,
    detect_layout,
    get_layout,
    stage_depths,
)

__all__ = ["ConversionReport", "convert_weights", "infer_model_name", "save_converted"]

StateDict = dict[str, torch.Tensor]


@dataclass
class ConversionReport:
    """What :func:`convert_weights` did: the source layout, the model it built and how the keys were handled."""

    source: str
    model: str
    kwargs: dict[str, Any]
    tensors: int
    renamed: int
    #: Model names were not given and were inferred from the tensors' names and shapes.
    inferred: bool = False
    #: BatchNorm ``num_batches_tracked`` counters absent from old checkpoints, filled with 0 (unused in eval).
    filled: list[str] = field(default_factory=list)
    origin: str = "state dict"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        how = "inferred" if self.inferred else "given"
        lines = [f"converted {self.tensors} tensors from {self.origin} ({self.source} layout, {self.renamed} renamed)",
                 f"model: {self.model} ({how}) with {json.dumps(self.kwargs)}"]
        if self.filled:
            lines.append(f"filled {len(self.filled)} missing BatchNorm num_batches_tracked counters with 0")
        return "\n".join(lines)


def _read(state_dict_or_path: Mapping[str, torch.Tensor] | str | Path) -> tuple[StateDict, str]:
    from senet.io import read_state_dict

    if isinstance(state_dict_or_path, (str, Path)):
        return dict(read_state_dict(state_dict_or_path)), str(state_dict_or_path)
    if not isinstance(state_dict_or_path, Mapping):
        raise ConfigError(f"expected a state dict or a file path, got {type(state_dict_or_path).__name__}")
    bad = [k for k, v in state_dict_or_path.items() if not isinstance(v, torch.Tensor)]
    if bad or not state_dict_or_path:
        raise SenetError("not a state dict (a mapping of names to tensors)"
                         + (f": {', '.join(map(str, bad[:5]))} are not tensors" if bad else ": it is empty"))
    return dict(state_dict_or_path), "state dict"


def _strip_wrapper_prefix(state: StateDict) -> StateDict:
    """Drop the ``module.`` prefix that ``DataParallel``/``DistributedDataParallel`` checkpoints carry."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def _shape_kwargs(state: StateDict) -> dict[str, Any]:
    """``num_classes`` and ``in_chans`` read off the tensors, where they differ from the builders' defaults."""
    kwargs: dict[str, Any] = {}
    fc = state.get("fc.weight")
    num_classes = int(fc.shape[0]) if fc is not None and fc.dim() == 2 else 0
    if num_classes != 1000:
        kwargs["num_classes"] = num_classes
    stem = state.get("conv1.weight")
    if stem is not None and stem.dim() == 4 and stem.shape[1] != 3:
        kwargs["in_chans"] = int(stem.shape[1])
    return kwargs


def _build(name: str, kwargs: dict[str, Any], device: str | None = None) -> nn.Module:
    from senet.models import create_model
    from senet.models.resnet import ResNet

    if device is None:
        model = create_model(name, **kwargs)
    else:
        with torch.device(device):
            model = create_model(name, **kwargs)
    if not isinstance(model, ResNet):
        raise ConfigError(f"{name} is not a ResNet-family model; weights can be converted into "
                          f"{', '.join(sorted({t for lay in LAYOUTS.values() for t in lay.targets}))}")
    return model


def _build_empty(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """:func:`senet.io.build_for_loading`, refusing models outside the ResNet family first."""
    from senet.io import build_for_loading

    _build(name, kwargs, device="meta")
    return build_for_loading(name, kwargs)


def _fill_bn_counters(model: nn.Module, state: StateDict) -> list[str]:
    filled = []
    for key in model.state_dict():
        bn = key[: -len("num_batches_tracked")]
        if key.endswith(".num_batches_tracked") and key not in state and bn + "running_mean" in state:
            state[key] = torch.tensor(0, dtype=torch.long)
            filled.append(key)
    return filled


def _fits(model: nn.Module, state: StateDict) -> bool:
    own = model.state_dict()
    needed = {k for k in own if not k.endswith("num_batches_tracked")}
    extra = {k for k in state if k not in own}
    return not extra and needed <= state.keys() and all(own[k].shape == state[k].shape for k in needed)


def infer_model_name(state: StateDict, layout: SourceLayout) -> str:
    """The one model of ``layout.targets`` whose tensor names and shapes match ``state`` (already renamed).

    Candidates are built on the meta device, so this allocates no weights.
    """
    extra = _shape_kwargs(state)
    depths = stage_depths(state)
    candidates = [name for name in layout.targets if STAGE_DEPTHS.get(name, depths) == depths]
    matches = [name for name in candidates
               if _fits(_build(name, {**layout.model_kwargs(name), **extra}, device="meta"), state)]
    if len(matches) != 1:
        found = "no model" if not matches else f"several models ({', '.join(matches)})"
        raise SenetError(f"{found} of the {layout.name} layout fit these weights; pass the model name "
                         f"(--model), one of {', '.join(layout.targets)}")
    return matches[0]


def convert_weights(
    state_dict_or_path: Mapping[str, torch.Tensor] | str | Path,
    source: str | None = None,
    model: str | None = None,
) -> tuple[nn.Module, ConversionReport]:
    """Build our model and fill it with a peer's weights; return ``(model, report)``, the model in eval mode.

    Args:
        state_dict_or_path: a state dict, or a ``.safetensors``/``.pth``/``.bin`` file.
        source: ``"timm"``, ``"caffe-port"`` or ``"torchvision"`` (see :mod:`senet.interop.layouts`); None reads
            the layout from the keys. A layout the keys contradict is refused, naming the layout they show: the
            stride placement and pooling follow the layout, so a wrong one would compute another function.
        model: our model name (``se_resnet50``) or the peer's (``seresnet50``, ``legacy_seresnet50``); None infers
            it from the tensors.

    Raises:
        SenetError: the file is a senet model already, is not a plain state dict, its keys contradict ``source``,
            or its tensors do not fit the model (the message lists the missing and unexpected keys and the shape
            mismatches, named after renaming).
    """
    if source is not None:
        get_layout(source)  # an unknown name is a ConfigError before the file is read
    _refuse_senet_file(state_dict_or_path)
    raw, origin = _read(state_dict_or_path)
    raw = _strip_wrapper_prefix(raw)
    layout = get_layout(check_layout(detect_layout(raw), source))
    state = layout.map_keys(raw)
    renamed = sum(1 for a, b in zip(raw, state) if a != b)
    inferred = model is None
    if model is None:
        name = infer_model_name(state, layout)
    else:
        name = layout.our_name(model)
        if name is None:
            raise ConfigError(f"the {layout.name} layout has no model {model!r}; choose one of "
                              f"{', '.join(layout.targets)} (or their {layout.name} names "
                              f"{', '.join(layout.aliases) or '-'})")
    kwargs = {**layout.model_kwargs(name), **_shape_kwargs(state)}
    net = _build_empty(name, kwargs)
    filled = _fill_bn_counters(net, state)
    from senet.io import load_state_dict_strict

    load_state_dict_strict(net, state, f"{origin} (keys after renaming from the {layout.name} layout to {name})")
    net.eval()
    report = ConversionReport(source=layout.name, model=name, kwargs=kwargs, tensors=len(raw), renamed=renamed,
                              inferred=inferred, filled=filled, origin=origin)
    net.senet_conversion = report.as_dict()
    return net, report


def _refuse_senet_file(path: Any) -> None:
    """A file that already names its senet architecture needs no conversion (and renaming it could only harm)."""
    if not isinstance(path, (str, Path)) or not (Path(path).is_dir() or Path(path).suffix == ".safetensors"):
        return
    from senet.io import read_config

    try:
        entry = read_config(path)["model"]
    except (SenetError, FileNotFoundError, OSError):
        return
    raise SenetError(f"{path} is already a senet model ({entry['name']}, senet layout): nothing to convert; "
                     f"load it with senet.load_model or pass it to `senet train --init-from` as it is")


def save_converted(model: nn.Module, out: str | Path, report: ConversionReport | None = None) -> Path:
    """Write a converted model so that :func:`senet.load_model` rebuilds it.

    ``out`` ending in ``.safetensors``: that one file, whose metadata names the architecture (refused when a
    ``config.json`` for another model sits beside it, since ``load_model`` would read that instead). Any other
    ``out`` is a folder written by :func:`senet.io.save_model` (``model.safetensors`` + ``config.json``).
    """
    from senet.io import CONFIG_FILE, atomic_save_safetensors, save_model
    from senet.models import model_config

    out = Path(out)
    entry = model_config(model)
    if not entry:
        raise SenetError("this model carries no build config: convert it with senet.interop.convert_weights")
    origin = {"converted_from": report.as_dict()} if report is not None else {}
    if out.suffix != ".safetensors":
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; give a folder or a path ending in .safetensors")
        return save_model(model, out, extra=origin)
    beside = out.with_name(CONFIG_FILE)
    if beside.exists():
        try:
            other = json.loads(beside.read_text()).get("model")
        except (ValueError, AttributeError):
            other = None
        if other != {"name": entry["name"], "kwargs": dict(entry.get("kwargs", {}))}:
            raise SenetError(f"{beside} describes another model and senet.load_model({out}) would read it; "
                             f"write to another folder or pass a folder as --out")
    meta = {"senet_config": json.dumps({"name": entry["name"], "kwargs": dict(entry.get("kwargs", {}))})}
    if report is not None:
        meta["converted_from"] = json.dumps(report.as_dict())
    return atomic_save_safetensors(model.state_dict(), out, metadata=meta)
