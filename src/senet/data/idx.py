"""The IDX file format of MNIST and Fashion-MNIST, read and written with numpy (gzip-compressed or plain).

An IDX file is a 4-byte magic number - two zero bytes, a type code, the number of dimensions ``n`` - then ``n``
big-endian uint32 sizes, then the array itself in big-endian C order. Anything else is reported as a
:class:`~senet.errors.SenetError` that names the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from senet.errors import SenetError

__all__ = ["IDX_TYPES", "read_idx", "write_idx"]

#: IDX type code -> numpy dtype (big-endian, as stored on disk).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_DTYPE = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise SenetError(f"{path}: cannot read the IDX file ({exc}); the file is damaged - fetch it again") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain, recognised by content) into a native-endian numpy array.

    Raises :class:`SenetError` naming ``path`` when the magic number, the type code or the size is wrong.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise SenetError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise SenetError(f"{path}: not an IDX file (unknown type code 0x{code:02x})")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise SenetError(f"{path}: IDX header is truncated ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header_len != expected:
        raise SenetError(
            f"{path}: IDX size mismatch: header says {shape} ({expected} bytes) "
            f"but the file holds {len(data) - header_len} bytes - the file is truncated or damaged"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it when ``compress`` is true (default: when the name ends in ``.gz``)."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF_DTYPE:
        raise SenetError(
            f"IDX cannot store dtype {array.dtype}; use one of uint8, int8, int16, int32, float32, float64"
        )
    code = _CODE_OF_DTYPE[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(IDX_TYPES[code], copy=False).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path
