"""Everything a run writes into its folder, and reading it back for ``--resume``.

Layout of a run folder ``DIR``::

    DIR/run.json          the training config, written before the first step (marks the folder as a run)
    DIR/train_state.pt    resume state after the last finished epoch (written last, atomically, through Fabric)
    DIR/model.safetensors + DIR/config.json          the model after the last finished epoch
    DIR/best/model.safetensors + best/config.json    the model with the best validation top-1 so far (none without
                                                     a validation split)
    DIR/metrics.csv       one row per finished epoch (validation columns empty when no validation part is held out)
    DIR/test.json         the test split's result for the selected model, evaluated once when training ends
    DIR/.senet.lock       held (``flock``) by the one process writing the folder; see :class:`RunFolderLock`

``train_state.pt`` holds only tensors, numbers, strings, lists, tuples and dicts: model and optimizer state, the
epoch and global step, the metric history, the best top-1, and every RNG state (Python, NumPy, torch CPU, CUDA
when present, and the data-order seed/epoch). It is written and read through Fabric (:mod:`senet.train.checkpoint`) with ``torch.load(weights_only=True)``, so a file that
would run code is refused. Because it is written after every other file of the epoch, a kill at any moment leaves
a consistent state: resuming redoes the interrupted epoch from the same RNG states and rewrites the other files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
from typing_extensions import Self  # typing.Self from Python 3.11 on

from senet.errors import SenetError
from senet.io import CONFIG_FILE, WEIGHTS_FILE, atomic_write_bytes, atomic_write_json, remove_stale_temporaries

__all__ = [
    "BEST_DIR",
    "METRICS_FILE",
    "METRIC_COLUMNS",
    "RUN_FILE",
    "STATE_FILE",
    "RunFolderLock",
    "capture_rng",
    "check_state_format",
    "check_state_matches_run",
    "folder_holds_run",
    "load_train_state",
    "lock_run_folder",
    "read_run_file",
    "remove_run_files",
    "restore_rng",
    "seed_everything",
    "write_metrics_csv",
    "write_run_file",
]

RUN_FILE = "run.json"
LOCK_FILE = ".senet.lock"
STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.csv"
BEST_DIR = "best"
STATE_FORMAT = "senet-train-state"
RUN_FORMAT = "senet-run"
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_top1", "val_top5", "lr", "epoch_time",
                  "images_per_s")
TEST_FILE = "test.json"
_RUN_FILES = (RUN_FILE, STATE_FILE, METRICS_FILE, WEIGHTS_FILE, CONFIG_FILE, TEST_FILE)


# ---------------------------------------------------------------------------------------------- RNG
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """Every global RNG state, in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the states from :func:`capture_rng`."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(obj: Any) -> Any:
    return tuple(_as_tuple(o) for o in obj) if isinstance(obj, (list, tuple)) else obj


# ---------------------------------------------------------------------------------------------- exclusive claim
class RunFolderLock:
    """An exclusive claim of a run folder for one writer, so two runs never mix their files in one folder.

    ``acquire`` creates the folder if needed and takes an ``flock`` on ``DIR/.senet.lock``, which records the
    holder's process id and host for the message a second writer gets. The operating system drops the lock when
    the holder exits or is killed, so a crash leaves no stale claim. ``release`` deletes the lock file (and the
    folder, if acquiring created it and nothing else was written). Without ``fcntl`` (Windows) no lock is taken.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> Self:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self._created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise SenetError(f"{self.directory} is in use by another senet run ({holder}); wait for it to "
                                 f"finish or choose another --out") from None
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break  # the file we locked is still the one at the path (not one a releasing holder removed)
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        for folder in (self.directory, self.directory / BEST_DIR):
            remove_stale_temporaries(folder)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        if self._created:
            try:
                self.directory.rmdir()  # only succeeds when the run wrote nothing
            except OSError:
                pass

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_run_folder(directory: str | Path) -> RunFolderLock:
    """Claim ``directory`` for this process (see :class:`RunFolderLock`); the caller releases it."""
    return RunFolderLock(directory).acquire()


def check_state_matches_run(state: dict[str, Any], recipe: dict[str, Any], directory: Path) -> None:
    """Refuse to resume from a state file written by a different recipe than the folder's ``run.json``.

    Two runs writing one folder (or files copied between folders) leave such a mix; continuing it would train a
    model that neither recipe describes.
    """
    saved = state.get("recipe")
    if saved is None:
        return
    plain_saved, plain_run = json.loads(json.dumps(saved, default=str)), json.loads(json.dumps(recipe, default=str))
    # A key one side lacks is an option added (or removed) since that file was written; it matches when the other
    # side holds the option's default, which is what the older code ran with.
    from senet.train.config import TrainConfig

    defaults = json.loads(json.dumps(TrainConfig().to_dict(), default=str))
    differ = sorted(k for k in set(plain_saved) | set(plain_run)
                    if plain_saved.get(k, defaults.get(k)) != plain_run.get(k, defaults.get(k)))
    if differ:
        shown = "; ".join(f"{k}: {plain_run.get(k)!r} in {RUN_FILE}, {plain_saved.get(k)!r} in {STATE_FILE}"
                          for k in differ[:3])
        raise SenetError(f"cannot resume: {directory} mixes two runs ({shown}); start again with --overwrite or "
                         f"another --out")


# ---------------------------------------------------------------------------------------------- state file
def load_train_state(directory: Path) -> dict[str, Any]:
    """Read ``train_state.pt`` outside a run (``senet train`` reads it through Fabric, see
    :mod:`senet.train.checkpoint`); anything that is not a plain senet state file raises :class:`SenetError`."""
    return read_state_file(Path(directory) / STATE_FILE,
                           lambda p: torch.load(str(p), map_location="cpu", weights_only=True))


def read_state_file(path: Path, load: Any) -> dict[str, Any]:
    """``load(path)`` checked as a senet training state: a foreign, corrupt or code-running file is one
    :class:`SenetError` (``senet train`` passes ``fabric.load``, everything else ``torch.load(weights_only=True)``)."""
    try:
        state = load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # UnpicklingError (code in the pickle), RuntimeError (truncated), ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SenetError(f"cannot resume: {path} is corrupt or not a plain senet training state "
                         f"({type(exc).__name__}: {first})") from exc
    check_state_format(state, path)
    return state


def check_state_format(state: Any, path: Path) -> None:
    """Refuse anything but a senet training state (the keys every version of the file has)."""
    required = ("epoch", "step", "model", "optimizer", "rng", "history", "best")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or any(k not in state for k in required):
        raise SenetError(f"cannot resume: {path} is not a senet training state (written by `senet train`)")


# ---------------------------------------------------------------------------------------------- run files
def write_run_file(directory: Path, config: dict[str, Any]) -> None:
    atomic_write_json(Path(directory) / RUN_FILE, {"format": RUN_FORMAT, "version": 1, "config": config})


def read_run_file(directory: Path) -> dict[str, Any]:
    """The config a run was started with; a foreign or corrupt ``run.json`` raises :class:`SenetError`."""
    path = Path(directory) / RUN_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SenetError(f"nothing to resume in {directory}: no {RUN_FILE} (start the run without --resume)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SenetError(f"cannot resume: {path} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT or not isinstance(doc.get("config"), dict):
        raise SenetError(f"cannot resume: {path} is not a senet run file")
    return doc["config"]


def write_metrics_csv(directory: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.csv`` from the full history (atomic, so a kill never leaves half a row)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row[k]) for k in METRIC_COLUMNS})
    atomic_write_bytes(Path(directory) / METRICS_FILE, text.getvalue().encode())


def _fmt(value: Any) -> str:
    if value is None:  # no validation split: the val_* columns stay empty
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def folder_holds_run(directory: Path) -> bool:
    directory = Path(directory)
    return any((directory / name).exists() for name in _RUN_FILES) or (directory / BEST_DIR).exists()


def remove_run_files(directory: Path) -> None:
    """Delete what ``senet train`` writes (for ``--overwrite``); other files in the folder are left alone."""
    directory = Path(directory)
    for name in _RUN_FILES:
        (directory / name).unlink(missing_ok=True)
    for sub in (BEST_DIR, "tensorboard"):
        if (directory / sub).is_dir():
            shutil.rmtree(directory / sub)
