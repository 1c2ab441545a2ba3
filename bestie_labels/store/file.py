"""HDF5 stores: one file per stage, resumable, atomic, refusing to mix options.

Layout of a finished store (``cues.h5``, ``wsss.h5``, ``pseudo.h5``, ...), format 2::

    /                      attrs: stage, format, version, options (JSON), inputs (JSON),
                                  shard ("i/n" or "")
    /meta/image_ids        (N,) bytes   image ids held by this file, in split order
    /meta/split_ids        (M,) bytes   every image id of the split (M == N unless sharded)
    /arrays/<name>/...     every image's array ``name`` back to back, with its index
    /attrs/<name>          (N,) int64   an integer attribute (warning count) of each image

(:mod:`bestie_labels.store.h5io` gives the ``arrays`` layout, :mod:`bestie_labels.store.codec` how
one array is encoded.) A store of format 1 (bestie before the format change: one HDF5 group
per image) is refused in one line that says to rerun its stage.

While a stage runs, finished images go to ``<out>.parts/``: ``header.json`` (stage, options,
inputs) and ``part-NNNNNN.h5`` files of a few dozen images each, every one written to a
temporary name and renamed, so SIGINT or SIGKILL loses at most the images in flight (a part has
the layout above, without the header attributes). A rerun with the same header resumes from the
parts; a rerun with another header is refused (``force`` discards the parts). ``finish()``
copies the images' bytes in split order into ``<out>`` (temporary name, then rename) and removes
the parts, so the final file does not depend on how many workers ran or where the run was
interrupted.

Environment: ``BESTIE_PART_SIZE`` (default 256) sets how many images go into one part, and a
part is also written once its first image has waited :data:`PART_SECONDS`: smaller parts lose
less work to a SIGKILL, larger ones cost less (a part is a file of a few dozen HDF5 objects). It
never changes the final store. A run killed while writing the final file leaves ``.<out>.<pid>.tmp``; the next run on the
same output removes it once that process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Mapping, Sequence

import h5py
import numpy as np

from ..core import interrupt
from ..core.version import __version__
from ..core.errors import BestieError, StaleOutputError, StoreFormatError
from ..core.fileio import atomic_path, ensure_free_space, read_json, remove_stale_temporaries, sha256_file, write_json
from .h5io import FileBytes, concat_layouts, layout_of, read_layout, write_ids, write_layout
from .codec import Encoded, decode, encode_arrays
from .header import describe_change, flat, ids_digest, make_header, text

#: The version of the file layout (:mod:`.h5io`) a store records as ``format``; a store of
#: another version is refused (written by another version of bestie).
STORE_FORMAT = 2
_PART_SIZE = 256
#: A part is written at the latest this many seconds after its first image was added (a slow
#: stage then loses at most this much work to a SIGKILL).
PART_SECONDS = 30.0


def default_part_size() -> int:
    """Images per part: ``$BESTIE_PART_SIZE`` when set (a positive integer), else 256."""
    v = os.environ.get("BESTIE_PART_SIZE", "").strip()
    if not v:
        return _PART_SIZE
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise BestieError(f"BESTIE_PART_SIZE must be a positive integer, got {v!r}")
    return n


def _ids(h5: h5py.File, name: str) -> list[str]:
    return [text(s) for s in h5[name][()]]


class Store:
    """Read access to a finished store.

    Args:
        path: the ``.h5`` file.
        stage: when given, the stage the store must come from (``"cues"``, ``"wsss"``, ...).
    """

    def __init__(self, path: str | os.PathLike, stage: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            parts = self.path.with_name(self.path.name + ".parts")
            hint = " (an unfinished run left parts: rerun its stage to resume)" if parts.exists() else ""
            raise BestieError("store not found" + hint, self.path)
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError:
            raise BestieError("not an HDF5 store (corrupt or another kind of file)", self.path) from None
        try:
            self._read_header(stage)
        except BaseException:
            self._h5.close()
            raise
        self._fingerprint: str | None = None

    def _read_header(self, stage: str | None) -> None:
        a = self._h5.attrs
        if "stage" not in a or "options" not in a or "format" not in a:
            raise BestieError("HDF5 file is not a bestie store (no stage/options attributes)", self.path)
        try:
            fmt = int(a["format"])
            self.stage: str = text(a["stage"])
        except (TypeError, ValueError, KeyError, OSError):
            raise BestieError("store attributes are malformed (stage/format)", self.path) from None
        if fmt != STORE_FORMAT:
            raise StoreFormatError(f"store format {fmt} is not supported (expected {STORE_FORMAT}): it was "
                                   f"written by another version of bestie ({text(a.get('version', '?'))}); rerun the "
                                   f"stage that made it", self.path)
        if stage is not None and self.stage != stage:
            raise BestieError(f"this is a '{self.stage}' store, expected a '{stage}' store", self.path)
        try:
            self.options: dict = json.loads(a["options"])
            self.inputs: dict = json.loads(a["inputs"])
            self.version: str = text(a.get("version", ""))
            self.shard: str = text(a.get("shard", ""))
            self.image_ids: list[str] = _ids(self._h5, "meta/image_ids")
            self.split_ids: list[str] = _ids(self._h5, "meta/split_ids")
            self._layout = read_layout(self._h5, self.image_ids)
        except (TypeError, ValueError, KeyError, OSError):
            raise BestieError("store is damaged (unreadable options, inputs, image list or index)", self.path) from None
        if not isinstance(self.options, dict) or not isinstance(self.inputs, dict):
            raise BestieError("store is damaged (options/inputs are not JSON objects)", self.path)
        self._row = {i: r for r, i in enumerate(self.image_ids)}
        self._bytes = FileBytes(self._h5, self._layout)

    def header(self) -> dict:
        return make_header(self.stage, STORE_FORMAT, self.options, self.inputs, self.shard)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._row

    def __len__(self) -> int:
        return len(self.image_ids)

    def _row_of(self, image_id: str) -> int:
        try:
            return self._row[image_id]
        except KeyError:
            raise BestieError(f"image {image_id} is not in this store", self.path) from None

    def encoded(self, image_id: str) -> dict[str, Encoded]:
        """One image's arrays as stored (:class:`~bestie_labels.store.codec.Encoded`, not decoded)."""
        try:
            return self._bytes.encoded(self._row_of(image_id))
        except (OSError, ValueError) as e:  # a damaged (e.g. truncated) file
            raise BestieError(f"store is damaged: cannot read image {image_id} ({type(e).__name__})",
                              self.path) from None

    def read(self, image_id: str) -> dict[str, np.ndarray]:
        """All arrays of one image as numpy arrays (names as written by the stage)."""
        enc = self.encoded(image_id)
        try:
            return {k: decode(e) for k, e in enc.items()}
        except ValueError as e:
            raise BestieError(f"store is damaged: cannot read image {image_id} ({e})", self.path) from None

    def image_attrs(self, image_id: str) -> dict:
        """The integer attributes (warning counts) set for one image."""
        return self._layout.image_attrs(self._row_of(image_id))

    def shape(self, image_id: str, name: str) -> tuple[int, ...]:
        """Shape of one image's array ``name``, read from the index (no data read)."""
        row = self._row_of(image_id)
        if name not in self._layout.shapes or self._layout.shapes[name][row][0] < 0:
            raise BestieError(f"store is damaged: image {image_id}: no '{name}' array", self.path)
        return tuple(int(x) for x in self._layout.shapes[name][row])

    def attr_totals(self) -> dict[str, int]:
        """Integer attributes of every image summed over the store (the stages' per-image
        warning counts), sorted by name; attributes that are 0 everywhere are left out."""
        return {k: int(v.sum()) for k, v in sorted(self._layout.attrs.items()) if v.any()}

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the file's bytes: what downstream stages record as this input."""
        if self._fingerprint is None:
            self._fingerprint = sha256_file(self.path)
        return self._fingerprint

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StoreWriter:
    """Write a store image by image, resumably.

    Args:
        path: final ``.h5`` path.
        stage: stage name recorded in the store.
        options: the options that determine the content (JSON-serialisable).
        inputs: ``{name: fingerprint}`` of every input (dataset split, upstream stores).
        split_ids: every image id of the split, in order.
        shard: ``(i, n)`` to write only ``split_ids[i::n]``.
        force: replace an output (finished or partial) made with another header.
        part_size: images per part file (default :func:`default_part_size`, i.e.
            ``$BESTIE_PART_SIZE`` or 256); it never changes the final store.

    Use ``is_current`` to skip a stage whose output is up to date, ``pending`` for the ids still
    to compute, ``add`` for each result (in any order), then ``finish``.
    """

    def __init__(self, path: str | os.PathLike, stage: str, options: Mapping, inputs: Mapping,
                 split_ids: Sequence[str], shard: tuple[int, int] | None = None, force: bool = False,
                 part_size: int | None = None):
        self.path = Path(path)
        self.parts_dir = self.path.with_name(self.path.name + ".parts")
        self.split_ids = list(split_ids)
        if shard is not None:
            i, n = shard
            if not (n >= 1 and 0 <= i < n):
                raise BestieError(f"bad shard {i}/{n}: need 0 <= I < N")
            self.image_ids = self.split_ids[i::n]
            shard_s = f"{i}/{n}"
        else:
            self.image_ids = list(self.split_ids)
            shard_s = ""
        self.header = make_header(stage, STORE_FORMAT, options, inputs, shard_s)
        self.header["image_ids_sha"] = ids_digest(self.image_ids)
        self.part_size = default_part_size() if part_size is None else int(part_size)
        self._buffer: list[tuple[str, Mapping, Mapping | None]] = []
        self._since = 0.0
        self._done: dict[str, Path] = {}
        self.is_current = False

        if self.path.exists():
            try:
                with Store(self.path) as old:
                    old_h = old.header()
                    old_h["image_ids_sha"] = ids_digest(old.image_ids)
            except BestieError as e:
                old_h, old_format = None, isinstance(e, StoreFormatError)
            if old_h == self.header:
                self.is_current = True
                self._drop_finished_parts()
                return
            if not force:
                if old_h is None:
                    what = "is a store of another format" if old_format else "is not a store of this stage"
                    raise StaleOutputError(f"exists and {what}; rerun with --force to replace it", self.path)
                raise StaleOutputError(
                    "was made with other options or inputs ("
                    + describe_change(flat(old_h), flat(self.header))
                    + "); rerun with --force to replace it", self.path)
        remove_stale_temporaries(self.path)
        self._open_parts(force)
        if self._done and not self.pending:
            # Every image is already in the parts: the earlier run was stopped while writing the
            # final file (Ctrl-C, SIGKILL, disk full). Finish it now, so that callers that only
            # compute ``pending`` images (none here) still end with the final store.
            self.finish()

    def _drop_finished_parts(self) -> None:
        """A run killed after renaming the final file but before removing its parts left them."""
        hdr = self.parts_dir / "header.json"
        if hdr.is_file():
            try:
                same = read_json(hdr) == self.header
            except BestieError:
                same = False
            if same:
                shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _open_parts(self, force: bool) -> None:
        hdr_path = self.parts_dir / "header.json"
        if self.parts_dir.exists():
            old = read_json(hdr_path) if hdr_path.is_file() else None
            if old != self.header:
                if not force and old is not None:
                    raise StaleOutputError(
                        "an unfinished run with other options or inputs left parts here ("
                        + describe_change(flat(old), flat(self.header))
                        + "); rerun with --force to discard them", self.parts_dir)
                shutil.rmtree(self.parts_dir)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        if not hdr_path.is_file():
            write_json(hdr_path, self.header, indent=1)
        wanted = set(self.image_ids)
        for p in sorted(self.parts_dir.glob("part-*.h5")):
            try:
                with h5py.File(p, "r") as h5:
                    ids = _ids(h5, "meta/image_ids")
            except (OSError, KeyError):
                p.unlink()  # a part is renamed into place only when complete; be safe anyway
                continue
            for i in ids:
                if i in wanted:
                    self._done[i] = p
        for p in self.parts_dir.glob(".*.tmp*"):
            p.unlink()

    @property
    def pending(self) -> list[str]:
        """Image ids (in split order) not yet written."""
        if self.is_current:
            return []
        return [i for i in self.image_ids if i not in self._done]

    @property
    def n_done(self) -> int:
        return len(self._done)

    def add(self, image_id: str, arrays: Mapping[str, np.ndarray | Encoded], attrs: Mapping | None = None) -> None:
        """Queue one image's arrays (numpy arrays of rank >= 1, or already
        :class:`~bestie_labels.store.codec.Encoded`); every ``part_size`` images are written as
        a part."""
        interrupt.check()
        if not self._buffer:
            self._since = time.monotonic()
        self._buffer.append((image_id, encode_arrays(arrays), {k: int(v) for k, v in (attrs or {}).items()}))
        if len(self._buffer) >= self.part_size or time.monotonic() - self._since > PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        n = len(list(self.parts_dir.glob("part-*.h5")))
        while (p := self.parts_dir / f"part-{n:06d}.h5").exists():
            n += 1
        ids, arrays, attrs = zip(*self._buffer)
        lay = layout_of(ids, arrays, attrs)
        ensure_free_space(p, sum(len(e.data) + 64 for a in arrays for e in a.values()) + 65536)
        try:
            with atomic_path(p) as tmp:
                with h5py.File(tmp, "w", track_order=True) as h5:
                    write_ids(h5, "meta/image_ids", ids)
                    write_layout(h5, lay, lambda name, i: arrays[i][name].data)
        except BaseException:
            if p.exists():  # a Ctrl-C landed after the rename: the part is complete, keep it once
                self._mark_done(p)
            raise
        self._mark_done(p)

    def _mark_done(self, p: Path) -> None:
        for image_id, _, _ in self._buffer:
            self._done[image_id] = p
        self._buffer.clear()

    def finish(self) -> Path:
        """Write the final store from the parts (split order) and remove the parts."""
        if self.is_current:
            return self.path
        self.flush()
        missing = [i for i in self.image_ids if i not in self._done]
        if missing:
            raise BestieError(f"{len(missing)} images were not written (first: {missing[0]})", self.path)
        parts = sorted(set(self._done.values()))
        ensure_free_space(self.path, sum(p.stat().st_size for p in parts))
        opened: dict[Path, tuple[h5py.File, FileBytes]] = {}
        try:
            for p in parts:
                h5 = h5py.File(p, "r")
                opened[p] = (h5, FileBytes(h5, read_layout(h5, _ids(h5, "meta/image_ids"))))
            self._write_final([opened[self._done[i]][1] for i in self.image_ids])
        finally:
            for h5, _ in opened.values():
                h5.close()
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        self.is_current = True
        return self.path

    def _write_final(self, sources: list[FileBytes]) -> None:
        """Write the store from ``sources[i]``, the part holding ``image_ids[i]``; a part's
        bytes are let go once its last image is copied."""
        row_in = {id(b): {iid: r for r, iid in enumerate(b.layout.image_ids)} for b in set(sources)}
        rows = [(b, row_in[id(b)][i]) for b, i in zip(sources, self.image_ids)]
        lay = concat_layouts([(b.layout, r) for b, r in rows])
        # the last image of each part with bytes of each name: fetch is called for those only
        last = {(id(rows[k][0]), name): k for name, off in lay.offsets.items() for k in np.flatnonzero(np.diff(off))}

        def fetch(name: str, k: int) -> bytes:
            b, r = rows[k]
            data = b.get(name, r)
            if last[id(b), name] == k:
                b.release(name)
            return data

        with atomic_path(self.path) as tmp:
            with h5py.File(tmp, "w", track_order=True) as out:
                h = self.header
                for k, v in (("stage", h["stage"]), ("format", STORE_FORMAT), ("version", __version__),
                             ("options", json.dumps(h["options"], sort_keys=True)),
                             ("inputs", json.dumps(h["inputs"], sort_keys=True)), ("shard", h["shard"])):
                    out.attrs[k] = v  # in this order: the file's bytes depend on it
                write_ids(out, "meta/image_ids", self.image_ids)
                write_ids(out, "meta/split_ids", self.split_ids)
                write_layout(out, lay, fetch)
