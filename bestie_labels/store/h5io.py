"""A store file's HDF5 layout (format 2): the index of what it holds, its bytes, and writing one.

Every array name of a store (``points``; ``mask``; ``instances``, ``classes``, ...) is one HDF5
group holding every image's array of that name back to back, so an image costs no HDF5 object
of its own::

    /arrays/<name>/            attrs: dtype (numpy dtype string, e.g. "<u2")
        bytes    (B,) uint8       the images' encoded arrays, in image order
        offset   (N + 1,) int64   image i's bytes are bytes[offset[i]:offset[i + 1]]
        shape    (N, D) int64     image i's array shape; a row of -1: no such array for image i
        planes   (N,) uint8       0: raw bytes; k: the first k planes of the byte shuffle, deflated
                                  (see :mod:`bestie_labels.store.codec`)
    /attrs/<name>  (N,) int64     an integer attribute of each image (0 where unset)

``N`` is the length of ``/meta/image_ids``; every dataset is contiguous and unfiltered, so any
HDF5 reader reads it, and ``zlib`` inflates a deflated array (then undo the byte shuffle, the
planes left out being zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import h5py
import numpy as np
from h5py import h5d, h5p, h5s, h5t

from .codec import KINDS, Encoded

#: Byte columns up to this size are read whole when first used; larger ones image by image.
IN_MEMORY_BYTES = 64 << 20


@dataclass
class Layout:
    """What a store file holds, without the bytes: one entry per array name of each column.

    ``dtypes[name]``; ``shapes[name] (N, D) int64`` (-1 rows: absent); ``offsets[name]
    (N + 1,) int64``; ``planes[name] (N,) uint8``; ``attrs[name] (N,) int64``.
    """

    image_ids: list[str]
    dtypes: dict[str, np.dtype] = field(default_factory=dict)
    shapes: dict[str, np.ndarray] = field(default_factory=dict)
    offsets: dict[str, np.ndarray] = field(default_factory=dict)
    planes: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, np.ndarray] = field(default_factory=dict)

    def image_attrs(self, row: int) -> dict[str, int]:
        """The attributes of image ``row`` that are set (non-zero), by name."""
        return {k: int(v[row]) for k, v in sorted(self.attrs.items()) if v[row]}


def _mismatch(name: str, dtype, rank: int, where: str, lay: Layout) -> ValueError:
    return ValueError(f"array '{name}' is {np.dtype(dtype)} of rank {rank} in {where} but "
                      f"{lay.dtypes[name]} of rank {lay.shapes[name].shape[1]} before")


def _column(lay: Layout, name: str, dtype, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty ``shape``, ``planes`` and byte-length columns of ``name`` in ``lay`` (dtype set)."""
    n = len(lay.image_ids)
    lay.dtypes[name] = np.dtype(dtype)
    lay.shapes[name] = np.full((n, rank), -1, np.int64)
    lay.planes[name] = np.zeros(n, np.uint8)
    return lay.shapes[name], lay.planes[name], np.zeros(n, np.int64)


def layout_of(image_ids: Sequence[str], arrays: Sequence[Mapping[str, Encoded]],
              attrs: Sequence[Mapping[str, int] | None]) -> Layout:
    """The :class:`Layout` of images given in memory (``arrays[i]`` and ``attrs[i]`` of
    ``image_ids[i]``). Raises ValueError when a name has two dtypes or two ranks."""
    lay = Layout(list(image_ids))
    for name in sorted({k for a in arrays for k in a}):
        first = next(a[name] for a in arrays if name in a)
        shape, planes, lengths = _column(lay, name, first.dtype, len(first.shape))
        for i, a in enumerate(arrays):
            e = a.get(name)
            if e is None:
                continue
            if np.dtype(e.dtype) != lay.dtypes[name] or len(e.shape) != shape.shape[1]:
                raise _mismatch(name, e.dtype, len(e.shape), f"image {image_ids[i]}", lay)
            shape[i], planes[i], lengths[i] = e.shape, e.planes, len(e.data)
        lay.offsets[name] = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    for k in sorted({k for a in attrs if a for k in a}):
        lay.attrs[k] = np.array([int((a or {}).get(k, 0)) for a in attrs], np.int64)
    return lay


def concat_layouts(rows: Sequence[tuple[Layout, int]]) -> Layout:
    """The layout of a file holding, in order, image ``row`` of each ``(layout, row)``;
    vectorised over each source's rows (the final store of a run is made from its parts)."""
    srcs = list({id(src): src for src, _ in rows}.values())
    index = {id(s): j for j, s in enumerate(srcs)}
    which = np.array([index[id(src)] for src, _ in rows], np.int64)
    row = np.array([r for _, r in rows], np.int64)
    at = [np.flatnonzero(which == j) for j in range(len(srcs))]
    lay = Layout([src.image_ids[r] for src, r in rows])
    for name in sorted({k for s in srcs for k in s.dtypes}):
        first = next(s for s in srcs if name in s.dtypes)
        shape, planes, lengths = _column(lay, name, first.dtypes[name], first.shapes[name].shape[1])
        for j, src in enumerate(srcs):
            if name not in src.dtypes or not at[j].size:
                continue
            if src.dtypes[name] != lay.dtypes[name] or src.shapes[name].shape[1] != shape.shape[1]:
                raise _mismatch(name, src.dtypes[name], src.shapes[name].shape[1], "another part", lay)
            r = row[at[j]]
            shape[at[j]], planes[at[j]], lengths[at[j]] = (src.shapes[name][r], src.planes[name][r],
                                                           np.diff(src.offsets[name])[r])
        lay.offsets[name] = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    for k in sorted({k for s in srcs for k in s.attrs}):
        lay.attrs[k] = np.zeros(len(rows), np.int64)
        for j, src in enumerate(srcs):
            if k in src.attrs:
                lay.attrs[k][at[j]] = src.attrs[k][row[at[j]]]
    return lay


def _property_lists():
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)  # the file's bytes then never depend on write order
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    return dcpl, lcpl


# One of each for every dataset a store creates (HDF5 copies a property list where it uses it).
_DCPL, _LCPL = _property_lists()


def _create(h5: h5py.File, path: str, a: np.ndarray) -> None:
    """A contiguous dataset holding ``a``, through the low-level API (fast, no timestamps)."""
    space = h5s.create_simple(a.shape) if a.ndim else h5s.create(h5s.SCALAR)
    d = h5d.create(h5.id, path.encode(), h5t.py_create(a.dtype, logical=True), space, dcpl=_DCPL, lcpl=_LCPL)
    if a.size:
        d.write(h5s.ALL, h5s.ALL, np.ascontiguousarray(a))


def write_layout(h5: h5py.File, lay: Layout, fetch: Callable[[str, int], bytes]) -> None:
    """Write the index and bytes of ``lay``; ``fetch(name, i)`` gives image i's encoded bytes.

    The bytes go out in blocks of about 8 MiB, so a store of any size is written in bounded
    memory.
    """
    for name in sorted(lay.dtypes):
        g = h5.require_group(f"arrays/{name}")
        g.attrs["dtype"] = lay.dtypes[name].str
        off = lay.offsets[name]
        _create(h5, f"arrays/{name}/offset", off)
        _create(h5, f"arrays/{name}/shape", lay.shapes[name])
        _create(h5, f"arrays/{name}/planes", lay.planes[name])
        d = h5d.create(h5.id, f"arrays/{name}/bytes".encode(), h5t.STD_U8LE,
                       h5s.create_simple((int(off[-1]),)), dcpl=_DCPL)
        if off[-1]:
            _write_blocks(d, [i for i in range(len(lay.image_ids)) if off[i + 1] > off[i]],
                          off, lambda i: fetch(name, i))
    for k, v in sorted(lay.attrs.items()):
        _create(h5, f"attrs/{k}", v)


def _write_blocks(d, rows: list[int], off: np.ndarray, get: Callable[[int], bytes], block: int = 8 << 20) -> None:
    """Write ``get(i)`` for the ``rows`` (in order, each with bytes) at ``off[i]`` of dataset ``d``."""
    buf: list[bytes] = []
    start = size = 0
    for i in rows:
        if not buf:
            start = int(off[i])
        b = get(i)
        buf.append(b)
        size += len(b)
        if size >= block or i == rows[-1]:
            a = np.frombuffer(b"".join(buf), np.uint8)
            fspace = d.get_space()
            fspace.select_hyperslab((start,), (a.size,))
            d.write(h5s.create_simple((a.size,)), fspace, a)
            buf, size = [], 0


def read_layout(h5: h5py.File, image_ids: list[str]) -> Layout:
    """The :class:`Layout` of an open store file. Raises ValueError when its index does not
    fit ``image_ids`` (a damaged file)."""
    n = len(image_ids)
    lay = Layout(list(image_ids))
    for name, g in h5.get("arrays", {}).items():
        lay.dtypes[name] = np.dtype(str(g.attrs["dtype"]))
        lay.offsets[name] = np.asarray(g["offset"][()], np.int64)
        lay.shapes[name] = np.asarray(g["shape"][()], np.int64)
        lay.planes[name] = np.asarray(g["planes"][()], np.uint8)
        off = lay.offsets[name]
        if (off.shape != (n + 1,) or lay.shapes[name].ndim != 2 or lay.shapes[name].shape[0] != n
                or lay.planes[name].shape != (n,) or off[0] != 0 or (np.diff(off) < 0).any()
                or off[-1] != g["bytes"].shape[0] or lay.dtypes[name].kind not in KINDS):
            raise ValueError(f"the index of array '{name}' does not fit the {n} images")
    for k, d in h5.get("attrs", {}).items():
        lay.attrs[k] = np.asarray(d[()], np.int64).reshape(-1)
        if lay.attrs[k].shape != (n,):
            raise ValueError(f"attribute '{k}' has {lay.attrs[k].size} values for {n} images")
    return lay


def read_bytes(h5: h5py.File, name: str, start: int, stop: int) -> bytes:
    """``arrays/<name>/bytes[start:stop]`` through the low-level API."""
    out = np.empty(stop - start, np.uint8)
    if out.size:
        d = h5[f"arrays/{name}/bytes"].id
        fspace = d.get_space()
        fspace.select_hyperslab((start,), (out.size,))
        d.read(h5s.create_simple((out.size,)), fspace, out)
    return out.tobytes()


class FileBytes:
    """The encoded bytes of one open file's images: small columns read whole once, large
    ones image by image."""

    def __init__(self, h5: h5py.File, layout: Layout, limit: int | None = None):
        self.h5, self.layout = h5, layout
        self.limit = IN_MEMORY_BYTES if limit is None else limit
        self._whole: dict[str, bytes] = {}

    def get(self, name: str, row: int) -> bytes:
        off = self.layout.offsets[name]
        a, b = int(off[row]), int(off[row + 1])
        if off[-1] > self.limit:
            return read_bytes(self.h5, name, a, b)
        if name not in self._whole:
            self._whole[name] = read_bytes(self.h5, name, 0, int(off[-1]))
        return self._whole[name][a:b]

    def release(self, name: str) -> None:
        """Let go of the column ``name`` read whole (a later :meth:`get` reads it again)."""
        self._whole.pop(name, None)

    def encoded(self, row: int) -> dict[str, Encoded]:
        """Image ``row``'s arrays as :class:`Encoded` (no decoding), by name."""
        lay = self.layout
        return {k: Encoded(tuple(int(x) for x in lay.shapes[k][row]), lay.dtypes[k], int(lay.planes[k][row]),
                           self.get(k, row))
                for k in sorted(lay.dtypes) if lay.shapes[k][row][0] >= 0}


def write_ids(h5: h5py.File, name: str, ids: Sequence[str]) -> None:
    h5.create_dataset(name, data=np.array([s.encode() for s in ids], dtype=object),
                      dtype=h5py.string_dtype(), track_times=False)
