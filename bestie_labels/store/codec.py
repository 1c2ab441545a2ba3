"""How one array of one image is kept in a store: its bytes, raw or deflated (pure, no I/O).

An array becomes an :class:`Encoded`: its shape, its dtype, a number of byte planes and the
bytes. Arrays under :data:`DEFLATE_MIN_BYTES` keep their raw C-order bytes (``planes == 0``).
Larger ones go through HDF5's byte shuffle (plane j holds byte j of every element, j = 0 ..
itemsize - 1); trailing planes that are all zero are left out, and the ``planes`` kept are
deflated with zlib at :data:`DEFLATE_LEVEL`. With every plane kept that is exactly the chunk
HDF5's ``shuffle`` + ``gzip`` filters write; leaving zero planes out is what makes a ``uint16``
instance map with fewer than 256 instances cost no more than a ``uint8`` one. The stage's worker
processes encode, so the one process that writes the store only appends bytes.
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
        planes: 0 when ``data`` is the raw bytes; k >= 1 when it is the first k byte planes of
            the shuffle, deflated (the other planes are all zero).
        data: the bytes.
    """

    shape: tuple
    dtype: np.dtype
    planes: int
    data: bytes


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
        return Encoded(tuple(a.shape), a.dtype, 0, a.tobytes())
    planes = a.reshape(-1).view(np.uint8).reshape(-1, a.itemsize).T  # (itemsize, n), a view
    k = a.itemsize
    while k > 1 and not planes[k - 1].any():  # plane by plane: numpy reduces a (k, n) view slowly
        k -= 1
    return Encoded(tuple(a.shape), a.dtype, k, zlib.compress(np.ascontiguousarray(planes[:k]), DEFLATE_LEVEL))


def decode(e: Encoded) -> np.ndarray:
    """The array of an :class:`Encoded` (a new, writable array).

    Raises ValueError when the bytes do not hold ``prod(shape)`` elements of ``dtype`` (a
    damaged store) or do not inflate.
    """
    dtype = np.dtype(e.dtype)
    n = int(np.prod(e.shape, dtype=np.int64))
    k = int(e.planes)
    if not 0 <= k <= dtype.itemsize:
        raise ValueError(f"{k} byte planes for elements of {dtype.itemsize} bytes")
    try:
        raw = zlib.decompress(e.data) if k else e.data
    except zlib.error as err:
        raise ValueError(f"bytes do not inflate ({err})") from None
    if len(raw) != n * (k or dtype.itemsize):
        raise ValueError(f"{len(raw)} bytes for {n} elements of {dtype} ({k} byte planes)")
    if k == 0:
        return np.frombuffer(raw, dtype).reshape(e.shape).copy()
    planes = np.frombuffer(raw, np.uint8).reshape(k, n)
    out = np.zeros(n * dtype.itemsize, np.uint8)  # the planes left out are 0
    for j in range(k):  # undo the shuffle one plane at a time: 1-D strided copies are fast
        out[j::dtype.itemsize] = planes[j]
    return out.view(dtype).reshape(e.shape)


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, Encoded]:
    """Every array of one image encoded (one already :class:`Encoded` is kept)."""
    return {k: v if isinstance(v, Encoded) else encode(np.asarray(v)) for k, v in arrays.items()}
