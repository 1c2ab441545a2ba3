"""How a store's arrays go into HDF5 and come back: HDF5's low-level API, for speed.

A store holds a few small datasets per image, and h5py's ``create_dataset`` and ``Group[...]``
cost several times more per call than the low-level calls they wrap. Arrays of
:data:`COMPRESS_MIN_BYTES` or more are compressed (byte shuffle, then deflate, the whole array
one chunk: HDF5's own filters, so any HDF5 reader decodes them); :func:`pack_arrays` does that
compression ahead of writing, in the stage's worker processes, and the writing process copies
the bytes with ``write_direct_chunk``. Smaller arrays are stored plain.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import h5py
import numpy as np
from h5py import h5d, h5g, h5p, h5s, h5t

#: Arrays of at least this many bytes are stored compressed (byte shuffle + deflate level
#: GZIP_LEVEL, one chunk per array); smaller ones plain: a chunked, filtered dataset costs more
#: than it saves for a few numbers.
COMPRESS_MIN_BYTES = 4096
GZIP_LEVEL = 1


@dataclass(frozen=True)
class Packed:
    """An array already compressed the way the store keeps it (byte shuffle, then deflate, as
    one chunk): what :func:`pack_arrays` makes in a worker, so that the process writing the
    store only copies bytes."""

    shape: tuple
    dtype: np.dtype
    chunk: bytes


def _packable(a: np.ndarray) -> bool:
    return a.ndim >= 1 and a.nbytes >= COMPRESS_MIN_BYTES and a.dtype.kind in "biuf"


def _pack(a: np.ndarray) -> Packed:
    a = np.ascontiguousarray(a)
    # HDF5's shuffle filter: byte k of every element together, for k = 0 .. itemsize - 1
    raw = a.view(np.uint8).reshape(-1, a.itemsize).T.tobytes() if a.itemsize > 1 else a.tobytes()
    return Packed(tuple(a.shape), a.dtype, zlib.compress(raw, GZIP_LEVEL))


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> dict:
    """``arrays`` with each one the store compresses replaced by its :class:`Packed` form.

    Optional: :meth:`StoreWriter.add` packs what is not packed yet. The stage engine calls it in
    its worker processes, which takes the compression off the one process that writes.
    """
    return {k: _pack(v) if isinstance(v, np.ndarray) and _packable(v) else v for k, v in arrays.items()}


def _property_lists():
    gcpl = h5p.create(h5p.GROUP_CREATE)
    gcpl.set_link_creation_order(h5p.CRT_ORDER_TRACKED | h5p.CRT_ORDER_INDEXED)
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    return gcpl, lcpl


_GCPL, _LCPL = _property_lists()


def _dcpl(chunk: tuple | None):
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    if chunk is not None:
        dcpl.set_chunk(chunk)
        dcpl.set_shuffle()
        dcpl.set_deflate(GZIP_LEVEL)
    return dcpl


def _write_array(gid, name: str, a) -> None:
    """One dataset, through HDF5's low-level API (h5py's ``create_dataset`` costs several times
    more per call, and a store has a few datasets per image)."""
    if not isinstance(a, Packed):
        a = np.ascontiguousarray(a)
        if a.dtype.kind not in "biuf":  # not a number array: h5py's general path
            h5py.Group(gid).create_dataset(name, data=a, track_times=False)
            return
        if _packable(a):
            a = _pack(a)
    if isinstance(a, Packed):
        d = h5d.create(gid, name.encode(), h5t.py_create(a.dtype, logical=True), h5s.create_simple(a.shape),
                       dcpl=_dcpl(a.shape))
        d.write_direct_chunk((0,) * len(a.shape), a.chunk)
        return
    space = h5s.create_simple(a.shape) if a.ndim else h5s.create(h5s.SCALAR)
    d = h5d.create(gid, name.encode(), h5t.py_create(a.dtype, logical=True), space, dcpl=_dcpl(None))
    if a.size:
        d.write(h5s.ALL, h5s.ALL, a)


def _read_array(d) -> np.ndarray:
    """One dataset through the low-level API (as :func:`_write_array`, for speed)."""
    if d.dtype.kind not in "biuf":
        return h5py.Dataset(d)[()]
    out = np.empty(d.shape, d.dtype)
    if out.size:
        d.read(h5s.ALL, h5s.ALL, out)
    return out


def _write_group(h5: h5py.File, image_id: str, arrays: Mapping[str, np.ndarray],
                 attrs: Mapping | None) -> None:
    gid = h5g.create(h5.id, f"images/{image_id}".encode(), lcpl=_LCPL, gcpl=_GCPL)
    for name in sorted(arrays):
        _write_array(gid, name, arrays[name])
    if attrs:
        g = h5py.Group(gid)
        for k, v in sorted(attrs.items()):
            g.attrs[k] = v


def _write_ids(h5: h5py.File, name: str, ids: Sequence[str]) -> None:
    h5.create_dataset(name, data=np.array([s.encode() for s in ids], dtype=object),
                      dtype=h5py.string_dtype(), track_times=False)


def copy_group(src: h5py.Group, out: h5py.File, image_id: str) -> None:
    """Copy one image's group into the final store, dataset by dataset in name order.

    Copying the group whole carries over its object-header layout, which depends on the part
    file it was written to; rebuilt this way the final store's bytes do not depend on how the
    run was split into parts or interrupted. Datasets are copied raw (no recompression)."""
    gid = h5g.create(out.id, f"images/{image_id}".encode(), lcpl=_LCPL, gcpl=_GCPL)
    g = h5py.Group(gid)
    for name in sorted(src):
        src.file.copy(src[name], g, name=name)
    for k, v in sorted(src.attrs.items()):
        g.attrs[k] = v
