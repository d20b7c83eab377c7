"""Reading, checking and writing IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is: two zero bytes, a dtype code, the number of dimensions, one big-endian
uint32 per dimension, then the values. Every check here runs before the array is used,
and every failure is a ``DigitnetError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from digitnet.errors import DigitnetError

# IDX dtype codes (from the MNIST page): all multi-byte types are big-endian.
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


def read_payload(path: Path) -> bytes:
    """The decompressed IDX bytes of ``path`` (.gz or raw)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DigitnetError(f"{path}: cannot read it ({e.strerror}); check the path") from e
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DigitnetError(
            f"{path}: the gzip data is truncated or corrupt ({e}); delete it and fetch it again"
        ) from e


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse(payload: bytes, path: Path, *, ndim: int, dtype: str = ">u1") -> np.ndarray:
    """Check the header of an IDX payload against its size and return the array (no copy)."""
    fix = "delete it and fetch it again"
    if len(payload) < 4 or payload[:2] != b"\x00\x00" or payload[2] not in DTYPES:
        raise DigitnetError(f"{path}: not an IDX file (bad magic number {payload[:4].hex()}); {fix}")
    if DTYPES[payload[2]] != dtype or payload[3] != ndim:
        raise DigitnetError(
            f"{path}: expected {ndim}-d {dtype} data, found {payload[3]}-d {DTYPES[payload[2]]}; "
            "is it the right file?"
        )
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise DigitnetError(f"{path}: truncated IDX header; {fix}")
    dims = tuple(int.from_bytes(payload[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    itemsize = np.dtype(dtype).itemsize
    expected = header + int(np.prod(dims)) * itemsize
    if len(payload) != expected:
        what = "truncated" if len(payload) < expected else "longer than its header says"
        raise DigitnetError(
            f"{path}: {what} ({len(payload)} bytes, header {dims} needs {expected}); {fix}"
        )
    return np.frombuffer(payload, dtype=dtype, offset=header).reshape(dims)


def encode(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array: what ``parse`` reads back."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()
