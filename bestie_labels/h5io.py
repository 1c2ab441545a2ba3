"""A store file's HDF5 layout (format 2): the index of what it holds, its bytes, and writing one.

Every array name of a store (``points``; ``mask``; ``instances``, ``classes``, ...) is one HDF5
group holding every image's array of that name back to back, so an image costs no HDF5 object
of its own::

    /arrays/<name>/            attrs: dtype (numpy dtype string, e.g. "<u2")
        bytes    (B,) uint8       the images' encoded arrays, in image order
        offset   (N + 1,) int64   image i's bytes are bytes[offset[i]:offset[i + 1]]
        shape    (N, D) int64     image i's array shape; a row of -1: no such array for image i
        deflate  (N,) bool        deflated byte-shuffle (see :mod:`bestie_labels.store_codec`), else raw
    /attrs/<name>  (N,) int64     an integer attribute of each image (0 where unset)

``N`` is the length of ``/meta/image_ids``; every dataset is contiguous and unfiltered, so any
HDF5 reader reads it, and ``zlib`` inflates a deflated array (then undo the byte shuffle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import h5py
import numpy as np
from h5py import h5d, h5p, h5s, h5t

from .store_codec import Encoded

#: Byte columns up to this size are read whole when first used; larger ones image by image.
IN_MEMORY_BYTES = 64 << 20


@dataclass
class Layout:
    """What a store file holds, without the bytes: one entry per array name of each column.

    ``dtypes[name]``; ``shapes[name] (N, D) int64`` (-1 rows: absent); ``offsets[name]
    (N + 1,) int64``; ``deflate[name] (N,) bool``; ``attrs[name] (N,) int64``.
    """

    image_ids: list[str]
    dtypes: dict[str, np.dtype] = field(default_factory=dict)
    shapes: dict[str, np.ndarray] = field(default_factory=dict)
    offsets: dict[str, np.ndarray] = field(default_factory=dict)
    deflate: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, np.ndarray] = field(default_factory=dict)

    def image_attrs(self, row: int) -> dict[str, int]:
        """The attributes of image ``row`` that are set (non-zero), by name."""
        return {k: int(v[row]) for k, v in sorted(self.attrs.items()) if v[row]}


#: One image's entry of one array name: ``(dtype, shape, length of its bytes, deflate)``.
_Entry = tuple


def _build(image_ids: list[str], entries: Sequence[Mapping[str, _Entry]],
           attrs: Sequence[Mapping[str, int]]) -> Layout:
    n = len(image_ids)
    lay = Layout(image_ids)
    for name in sorted({k for e in entries for k in e}):
        dtype, shape0, _, _ = next(e[name] for e in entries if name in e)
        lay.dtypes[name] = np.dtype(dtype)
        shape = np.full((n, len(shape0)), -1, np.int64)
        lengths = np.zeros(n, np.int64)
        deflate = np.zeros(n, bool)
        for i, e in enumerate(entries):
            if name not in e:
                continue
            dt, sh, length, defl = e[name]
            if np.dtype(dt) != lay.dtypes[name] or len(sh) != shape.shape[1]:
                raise ValueError(f"array '{name}' is {np.dtype(dt)} of rank {len(sh)} in image {image_ids[i]} "
                                 f"but {lay.dtypes[name]} of rank {shape.shape[1]} in image {image_ids[0]}")
            shape[i], lengths[i], deflate[i] = sh, length, defl
        lay.shapes[name], lay.deflate[name] = shape, deflate
        lay.offsets[name] = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    for k in sorted({k for a in attrs for k in a}):
        lay.attrs[k] = np.array([int(a.get(k, 0)) for a in attrs], np.int64)
    return lay


def layout_of(image_ids: Sequence[str], arrays: Sequence[Mapping[str, Encoded]],
              attrs: Sequence[Mapping[str, int] | None]) -> Layout:
    """The :class:`Layout` of images given in memory (``arrays[i]`` and ``attrs[i]`` of
    ``image_ids[i]``). Raises ValueError when a name has two dtypes or two ranks."""
    entries = [{k: (e.dtype, e.shape, len(e.data), e.deflate) for k, e in a.items()} for a in arrays]
    return _build(list(image_ids), entries, [a or {} for a in attrs])


def concat_layouts(rows: Sequence[tuple[Layout, int]]) -> Layout:
    """The layout of a file holding, in order, image ``row`` of each ``(layout, row)``."""
    entries = [{k: (src.dtypes[k], tuple(src.shapes[k][r]), int(src.offsets[k][r + 1] - src.offsets[k][r]),
                    bool(src.deflate[k][r])) for k in src.dtypes if src.shapes[k][r][0] >= 0}
               for src, r in rows]
    return _build([src.image_ids[r] for src, r in rows], entries, [src.image_attrs(r) for src, r in rows])


def _dcpl():
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)  # the file's bytes then never depend on write order
    return dcpl


def _create(h5: h5py.File, path: str, a: np.ndarray) -> None:
    """A contiguous dataset holding ``a``, through the low-level API (fast, no timestamps)."""
    space = h5s.create_simple(a.shape) if a.ndim else h5s.create(h5s.SCALAR)
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    d = h5d.create(h5.id, path.encode(), h5t.py_create(a.dtype, logical=True), space, dcpl=_dcpl(), lcpl=lcpl)
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
        _create(h5, f"arrays/{name}/deflate", lay.deflate[name])
        d = h5d.create(h5.id, f"arrays/{name}/bytes".encode(), h5t.STD_U8LE,
                       h5s.create_simple((int(off[-1]),)), dcpl=_dcpl())
        if off[-1]:
            _write_blocks(d, [i for i in range(len(lay.image_ids)) if off[i + 1] > off[i]],
                          off, lambda i: fetch(name, i))
    for k, v in sorted(lay.attrs.items()):
        _create(h5, f"attrs/{k}", v)


def _write_blocks(d, rows: list[int], off: np.ndarray, get: Callable[[int], bytes], block: int = 8 << 20) -> None:
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
        lay.deflate[name] = np.asarray(g["deflate"][()], bool)
        off = lay.offsets[name]
        if (off.shape != (n + 1,) or lay.shapes[name].ndim != 2 or lay.shapes[name].shape[0] != n
                or lay.deflate[name].shape != (n,) or off[0] != 0 or (np.diff(off) < 0).any()
                or off[-1] != g["bytes"].shape[0] or lay.dtypes[name].kind not in "biuf"):
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

    def __init__(self, h5: h5py.File, layout: Layout, limit: int = IN_MEMORY_BYTES):
        self.h5, self.layout, self.limit = h5, layout, limit
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
        return {k: Encoded(tuple(int(x) for x in lay.shapes[k][row]), lay.dtypes[k], bool(lay.deflate[k][row]),
                           self.get(k, row))
                for k in sorted(lay.dtypes) if lay.shapes[k][row][0] >= 0}


def write_ids(h5: h5py.File, name: str, ids: Sequence[str]) -> None:
    h5.create_dataset(name, data=np.array([s.encode() for s in ids], dtype=object),
                      dtype=h5py.string_dtype(), track_times=False)
