"""Weights on disk: ``model.safetensors`` plus ``config.json``; loading never executes code from a file.

A saved model is a folder with two files:

* ``model.safetensors`` - the state dict; its header metadata also carries the model config, so the file alone
  names its architecture;
* ``config.json`` - ``{"format": "senet", "version": 1, "model": {"name", "kwargs"}, ...}`` plus anything the
  caller adds (dataset, class names, metrics).

Every write is atomic: a temporary file in the same folder, flushed, then renamed over the target
(:func:`atomic_write_bytes`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from senet.errors import SenetError

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "atomic_save_safetensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "build_for_loading",
    "check_data_fits_model",
    "load_model",
    "load_state_dict_strict",
    "read_config",
    "read_state_dict",
    "remove_stale_temporaries",
    "save_model",
    "saved_dataset_name",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "senet"
VERSION = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash at any moment leaves either the old file or the new one.

    The bytes go to a temporary file in the same folder (``.NAME.PID.RANDOM.tmp``), are flushed to disk, and the
    file is renamed over ``path``. Temporaries left by a killed writer (its process is gone) are removed on the next
    write into the folder. The new file gets the permissions the umask allows, like any file the user creates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no call that only reads it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete ``.NAME.PID.RANDOM.tmp`` files in ``folder`` whose writer process no longer exists; return them.

    A temporary whose process is alive (a concurrent writer) is left alone, and so is any file not named like ours.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
            continue
        parts = name[: -len(TEMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or _process_alive(int(parts[1])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _plain_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors; tensors sharing storage are cloned (safetensors refuses aliases)."""
    out, seen = {}, set()
    for k, v in state.items():
        t = v.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else None
        if key is not None and key in seen:
            t = t.clone()
        seen.add(key)
        out[k] = t
    return out


def atomic_save_safetensors(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None):
    """Save a state dict as safetensors atomically."""
    from safetensors.torch import save

    return atomic_write_bytes(path, save(_plain_tensors(state), metadata=metadata))


def _model_entry(model: nn.Module, config: dict[str, Any] | None) -> dict[str, Any]:
    entry = config or getattr(model, "senet_config", None)
    if not entry or "name" not in entry:
        raise SenetError(
            "this model carries no build config: build it with senet.create_model(...) or pass "
            "config={'name': ..., 'kwargs': {...}}"
        )
    return _with_real_class_count(model, {"name": entry["name"], "kwargs": dict(entry.get("kwargs", {}))})


def _with_real_class_count(model: nn.Module, entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with ``num_classes`` set to the classifier's actual output count, so a model whose ``fc`` was
    replaced by hand (``model.fc = nn.Linear(512, 10)``) is saved as the model it now is and loads back."""
    from senet.models import create_model
    from senet.models.common import classifier_of

    head = classifier_of(model)
    if not isinstance(head, nn.Linear):
        return entry

    try:
        with torch.device("meta"):  # the model the config describes, without allocating it
            described = classifier_of(create_model(entry["name"], **entry["kwargs"]))
    except (SenetError, ValueError, TypeError, RuntimeError):  # a config that does not build: load_model says so
        return entry
    if isinstance(described, nn.Linear) and described.out_features != head.out_features:
        entry["kwargs"]["num_classes"] = head.out_features
    return entry


def save_model(
    model: nn.Module, directory: str | Path, *, config: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` and return the folder.

    ``config`` overrides the model's own ``senet_config`` (``{"name", "kwargs"}``); ``extra`` adds top-level keys to
    ``config.json`` (dataset, class names, metrics, ...).
    """
    directory = Path(directory)
    from senet.models.fold import FOLDED_ATTR

    if getattr(model, FOLDED_ATTR, False):
        raise SenetError("this model has its BatchNorms folded into its convolutions (senet.fold_batchnorm): its "
                         "weights no longer fit the architecture; save the model before folding")
    entry = _model_entry(model, config)
    doc = {"format": FORMAT, "version": VERSION, "model": entry, **(extra or {})}
    try:
        meta = {"senet_config": json.dumps(doc["model"])}
    except TypeError as exc:
        raise SenetError(f"model kwargs must be JSON-serialisable to be saved: {exc}") from exc
    atomic_save_safetensors(model.state_dict(), directory / WEIGHTS_FILE, metadata=meta)
    atomic_write_json(directory / CONFIG_FILE, doc)
    return directory


def _resolve(path: str | Path) -> tuple[Path, Path | None]:
    """(weights file, config file or None) for a folder, a .safetensors file or a config.json."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.exists():
            raise SenetError(f"{path} holds no {WEIGHTS_FILE}: is it a folder written by `senet train` or save_model?")
        cfg = path / CONFIG_FILE
        return weights, cfg if cfg.exists() else None
    if path.name == CONFIG_FILE:
        return path.with_name(WEIGHTS_FILE), path
    cfg = path.with_name(CONFIG_FILE)
    return path, cfg if cfg.exists() else None


def read_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` document for a saved model (folder, weights file or config file).

    For a lone ``.safetensors`` file the model entry is read from its metadata. A foreign or corrupt file raises
    :class:`~senet.errors.SenetError`.
    """
    weights, cfg = _resolve(path)
    if cfg is not None:
        try:
            doc = json.loads(cfg.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SenetError(f"{cfg} is not valid JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or "model" not in doc:
            raise SenetError(f"{cfg} is not a senet config (expected \"format\": \"senet\" and a \"model\" entry)")
        doc["model"] = _checked_model_entry(doc["model"], cfg)
        return doc
    meta = _safetensors_metadata(weights)
    if "senet_config" not in meta:
        raise SenetError(f"{weights} names no architecture (no config.json beside it, no senet metadata)")
    try:
        entry = json.loads(meta["senet_config"])
    except (json.JSONDecodeError, TypeError) as exc:
        raise SenetError(f"{weights}: its senet_config metadata is not valid JSON ({exc})") from exc
    return {"format": FORMAT, "version": VERSION, "model": _checked_model_entry(entry, weights)}


def _checked_model_entry(entry: Any, source: Path) -> dict[str, Any]:
    """``entry`` as ``{"name": str, "kwargs": dict}`` (kwargs default ``{}``), or a SenetError naming ``source``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise SenetError(f"{source} is not a senet config: its \"model\" entry must be an object with a string "
                         f"\"name\" (got {json.dumps(entry)[:80]})")
    kwargs = entry.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise SenetError(f"{source} is not a senet config: \"model\".\"kwargs\" must be an object of keyword "
                         f"arguments, got {type(kwargs).__name__} {json.dumps(kwargs)[:60]}")
    return {**entry, "kwargs": kwargs}


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled headers
        raise SenetError(f"{path} is not a readable safetensors file ({exc})") from exc


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file, or from a ``.pt``/``.pth``/``.bin`` file via ``weights_only=True``.

    A pickle that would run code, a truncated file, or a file that holds no state dict raise
    :class:`~senet.errors.SenetError`; nothing in the file is ever executed.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise SenetError(f"{path} is not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code-running pickles, RuntimeError for truncated zips, ...
        import pickle
        import re

        if isinstance(exc, pickle.UnpicklingError):
            found = re.search(r"Unsupported (global: GLOBAL [\w.]+|operand \d+)", str(exc))
            raise SenetError(
                f"refusing to load {path}: not a plain tensor file - it is a pickle that asks to call or build "
                f"Python objects ({found.group(0) if found else 'not tensors'}); nothing in it was run. Only plain "
                f"state dicts load (torch.load weights_only=True); prefer .safetensors") from exc
        raise SenetError(f"refusing to load {path}: not a plain tensor file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SenetError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "file") -> None:
    """Load ``state`` into ``model``; missing/unexpected keys and shape mismatches raise one error listing them."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                more = f" ... (+{len(items) - 8} more)" if len(items) > 8 else ""
                parts.append(f"{label} ({len(items)}): {', '.join(items[:8])}{more}")
        raise SenetError(f"weights in {source} do not fit the model - " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def check_data_fits_model(
    entry: dict[str, Any] | None, *, num_classes: int, in_chans: int, model_source: str = "the model",
    data_name: str = "the dataset",
) -> None:
    """Raise :class:`~senet.errors.SenetError` when a dataset's ``num_classes``/``in_chans`` differ from those in
    the model's build config ``entry`` (``{"name", "kwargs"}``, e.g. ``read_config(dir)["model"]`` or a model's
    ``senet_config``). Keys the config does not record are not checked (``None`` checks nothing)."""
    kwargs = (entry or {}).get("kwargs") or {}
    for key, have in (("num_classes", num_classes), ("in_chans", in_chans)):
        if key in kwargs and kwargs[key] != have:
            raise SenetError(f"{model_source} was built for {key}={kwargs[key]} but {data_name} has {key}={have}: "
                             f"use it on the data it was trained for")


def saved_dataset_name(doc: dict[str, Any], data: str | None = None, *, source: str = "the saved model") -> str:
    """``data`` if given, else the dataset name a saved run recorded in its config (``doc["dataset"]``).

    Raises :class:`~senet.errors.SenetError` asking for ``--data NAME`` when neither says which dataset to use.
    """
    if data:
        return data
    info = doc.get("dataset")
    name = info.get("name") if isinstance(info, dict) else info
    if not isinstance(name, str) or not name:
        raise SenetError(f"{source} does not record which dataset it was trained on: pass --data NAME")
    return name


def build_for_loading(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """``create_model(name, **kwargs)`` with uninitialised CPU storage, for a strict state-dict load to fill.

    The random initialisation would be overwritten anyway (seconds for SENet-154), so the model is built on the meta
    device and given empty storage. A model with non-persistent buffers, which a state dict does not fill, is built
    normally.
    """
    from senet.models import create_model

    with torch.device("meta"):
        model = create_model(name, **kwargs)
    persistent = set(model.state_dict())
    if any(k not in persistent for k, _ in model.named_buffers()):
        return create_model(name, **kwargs)
    return model.to_empty(device="cpu")


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a folder (or weights/config file) written by :func:`save_model` or ``senet train``."""
    doc = read_config(path)
    entry = doc["model"]
    model = build_for_loading(entry["name"], entry["kwargs"])
    weights, _ = _resolve(path)
    try:
        load_state_dict_strict(model, read_state_dict(weights), str(weights))
    except SenetError as exc:
        if " fc." in str(exc).replace("(", " ").replace(",", " ").replace(":", " "):
            raise SenetError(f"{exc} - the classifier was changed after the model was built: rebuild it with "
                             f"num_classes=N (or model.resetclassifier_of(N)) and save it again") from None
        raise
    model.senet_saved_config = doc
    return model.to(map_location).eval()
