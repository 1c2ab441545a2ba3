"""How one array of one image is kept in a store: its bytes, raw or deflated (pure, no I/O).

An array becomes an :class:`Encoded`: its shape, its dtype and its bytes, either the raw C-order
bytes or, for arrays of :data:`DEFLATE_MIN_BYTES` or more, HDF5's byte shuffle (byte k of every
element together, k = 0 .. itemsize - 1) deflated with zlib at :data:`DEFLATE_LEVEL`: exactly the
chunk HDF5's ``shuffle`` + ``gzip`` filters would write for the array as one chunk. The stage's
worker processes encode, so the one process that writes the store only appends bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

#: Arrays of at least this many bytes are deflated; smaller ones are kept raw: compressing a
#: few numbers costs more than it saves.
DEFLATE_MIN_BYTES = 4096
DEFLATE_LEVEL = 1
#: Array kinds a store holds: bool, signed and unsigned integers, floats.
KINDS = "biuf"


@dataclass(frozen=True)
class Encoded:
    """One array as a store keeps it.

    Attributes:
        shape: the array's shape.
        dtype: the array's dtype (little- or big-endian as it was given).
        deflate: True when ``data`` is the deflated byte-shuffle, False for the raw bytes.
        data: the bytes.
    """

    shape: tuple
    dtype: np.dtype
    deflate: bool
    data: bytes


def _shuffle(raw: np.ndarray, itemsize: int) -> np.ndarray:
    """``(n * itemsize,) uint8`` -> the same bytes grouped by byte position within an element."""
    return raw.reshape(-1, itemsize).T if itemsize > 1 else raw


def encode(a: np.ndarray) -> Encoded:
    """``a`` (rank >= 1, a dtype of kind ``b``, ``i``, ``u`` or ``f``) as an :class:`Encoded`.

    Raises ValueError for a scalar or another kind of array (strings, objects): stores hold
    arrays of numbers only.
    """
    a = np.asarray(a)
    if a.dtype.kind not in KINDS:
        raise ValueError(f"a store holds arrays of numbers, not of dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError("a store holds arrays of rank 1 or more, not scalars")
    a = np.ascontiguousarray(a)
    if a.nbytes < DEFLATE_MIN_BYTES:
        return Encoded(tuple(a.shape), a.dtype, False, a.tobytes())
    shuffled = _shuffle(a.reshape(-1).view(np.uint8), a.itemsize)
    return Encoded(tuple(a.shape), a.dtype, True, zlib.compress(np.ascontiguousarray(shuffled), DEFLATE_LEVEL))


def decode(e: Encoded) -> np.ndarray:
    """The array of an :class:`Encoded` (a new, writable array).

    Raises ValueError when the bytes do not hold ``prod(shape)`` elements of ``dtype`` (a
    damaged store) or do not inflate.
    """
    dtype = np.dtype(e.dtype)
    n = int(np.prod(e.shape, dtype=np.int64))
    try:
        raw = zlib.decompress(e.data) if e.deflate else e.data
    except zlib.error as err:
        raise ValueError(f"bytes do not inflate ({err})") from None
    if len(raw) != n * dtype.itemsize:
        raise ValueError(f"{len(raw)} bytes for {n} elements of {dtype}")
    flat = np.frombuffer(raw, np.uint8)
    if e.deflate and dtype.itemsize > 1:
        flat = flat.reshape(dtype.itemsize, n).T  # undo the shuffle; the copy below makes it C-order
    return flat.copy(order="C").view(dtype).reshape(e.shape)


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, Encoded]:
    """Every array of one image encoded (one already :class:`Encoded` is kept)."""
    return {k: v if isinstance(v, Encoded) else encode(np.asarray(v)) for k, v in arrays.items()}
