"""Where datasets live on disk: ``--data-dir``, then ``$SENET_DATA``, then the download cache
(:data:`DEFAULT_DOWNLOAD_DIR`), then system folders; and where downloads go.

Nothing is downloaded unless the caller asks (``download=True`` / ``--download``); a failed download becomes a
:class:`~senet.errors.SenetError` that says what to do offline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar
from urllib.error import URLError

from senet.errors import SenetError

__all__ = ["DEFAULT_DOWNLOAD_DIR", "ENV_VAR", "candidate_dirs", "download_root", "run_download", "search_roots"]

#: Environment variable naming a folder of datasets (the same role as ``--data-dir``).
ENV_VAR = "SENET_DATA"
#: Where ``download=True`` puts files when neither ``data_dir`` nor ``$SENET_DATA`` is set.
DEFAULT_DOWNLOAD_DIR = Path("~/.cache/senet/data")

T = TypeVar("T")


def _user_roots(data_dir: str | os.PathLike | None) -> list[Path]:
    """``data_dir`` then ``$SENET_DATA`` (unset ones left out)."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env).expanduser())
    return roots


def search_roots(data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders searched, in order: ``data_dir``, ``$SENET_DATA`` (unset ones left out), and last the download
    cache :data:`DEFAULT_DOWNLOAD_DIR`, so that a dataset fetched once with ``--download`` is found later."""
    return list(dict.fromkeys([*_user_roots(data_dir), DEFAULT_DOWNLOAD_DIR.expanduser()]))


def candidate_dirs(roots: Iterable[Path], subfolders: Iterable[str], system: Iterable[Path] = ()) -> list[Path]:
    """Each root's dataset-specific ``subfolders`` first, then the root itself, then the ``system`` folders."""
    subfolders = list(subfolders)
    found: list[Path] = []
    for root in roots:
        found.extend(root / sub for sub in subfolders)
        found.append(root)
    found.extend(Path(p) for p in system)
    return list(dict.fromkeys(found))


def download_root(data_dir: str | os.PathLike | None) -> Path:
    """The folder a download writes to: ``data_dir``, else ``$SENET_DATA``, else :data:`DEFAULT_DOWNLOAD_DIR`."""
    roots = _user_roots(data_dir)
    return roots[0] if roots else DEFAULT_DOWNLOAD_DIR.expanduser()


def run_download(name: str, root: Path, fetch: Callable[[], T]) -> T:
    """Call ``fetch`` (a torchvision download) and turn network or disk failures into one clear SenetError."""
    try:
        return fetch()
    except (URLError, OSError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SenetError(
            f"could not download {name} to {root} ({type(exc).__name__}: {reason}); if this machine is offline, "
            f"copy the files into a folder and pass it with --data-dir (or set {ENV_VAR})"
        ) from exc
