"""HDF5 stores: one file per stage, resumable, atomic, refusing to mix options.

Layout of a finished store (``cues.h5``, ``wsss.h5``, ``pseudo.h5``, ...)::

    /                      attrs: stage, format, version, options (JSON), inputs (JSON),
                                  shard ("i/n" or ""), created_by
    /meta/image_ids        (N,) bytes   image ids held by this file, in split order
    /meta/split_ids        (M,) bytes   every image id of the split (M == N unless sharded)
    /images/<image_id>/    one group per image: one dataset per array (stage-specific);
                           arrays of 4 KiB or more gzip-compressed (shuffle, level 1, the
                           whole array one chunk), smaller ones plain

While a stage runs, finished images go to ``<out>.parts/``: ``header.json`` (stage, options,
inputs) and ``part-NNNNNN.h5`` files of a few dozen images each, every one written to a
temporary name and renamed, so SIGINT or SIGKILL loses at most the images in flight. A rerun with
the same header resumes from the parts; a rerun with another header is refused (``force``
discards the parts). ``finish()`` copies the groups in split order into ``<out>`` (temporary
name, then rename) and removes the parts, so the final file does not depend on how many workers
ran or where the run was interrupted.

Environment: ``BESTIE_PART_SIZE`` (default 64) sets how many images go into one part: smaller
parts lose less work to a SIGKILL, larger ones mean fewer files. It never changes the final
store. A run killed while writing the final file leaves ``.<out>.<pid>.tmp``; the next run on the
same output removes it once that process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import h5py
import numpy as np
from h5py import h5d, h5g

from . import __version__, interrupt
from .errors import BestieError, StaleOutputError
from .fileio import atomic_path, ensure_free_space, read_json, remove_stale_temporaries, sha256_file, write_json
from .store_header import describe_change, flat, ids_digest
from .h5io import _read_array, _write_group, _write_ids, copy_group

FORMAT = 1
_PART_SIZE = 64


def default_part_size() -> int:
    """Images per part: ``$BESTIE_PART_SIZE`` when set (a positive integer), else 64."""
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


# Old names of the interrupt flag (now in :mod:`bestie_labels.interrupt`), kept for callers.
request_interrupt = interrupt.request
check_interrupt = interrupt.check


def _header(stage: str, options: Mapping, inputs: Mapping, shard: str) -> dict:
    # JSON round trip so that tuples, paths and numpy scalars compare equal to what is read back.
    return json.loads(json.dumps({"stage": stage, "format": FORMAT, "options": dict(options),
                                  "inputs": dict(inputs), "shard": shard}, default=str))


def _text(v) -> str:
    """An HDF5 string attribute or dataset element as ``str``."""
    return v.decode() if isinstance(v, bytes) else str(v)


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
            self.stage: str = _text(a["stage"])
        except (TypeError, ValueError, KeyError, OSError):
            raise BestieError("store attributes are malformed (stage/format)", self.path) from None
        if fmt != FORMAT:
            raise BestieError(f"store format {fmt} is not supported (expected {FORMAT}): it was written by "
                              f"another version of bestie ({_text(a.get('version', '?'))})", self.path)
        if stage is not None and self.stage != stage:
            raise BestieError(f"this is a '{self.stage}' store, expected a '{stage}' store", self.path)
        try:
            self.options: dict = json.loads(a["options"])
            self.inputs: dict = json.loads(a["inputs"])
            self.version: str = _text(a.get("version", ""))
            self.shard: str = _text(a.get("shard", ""))
            self.image_ids: list[str] = [_text(s) for s in self._h5["meta/image_ids"][()]]
            self.split_ids: list[str] = [_text(s) for s in self._h5["meta/split_ids"][()]]
        except (TypeError, ValueError, KeyError, OSError):
            raise BestieError("store is damaged (unreadable options, inputs or image list)", self.path) from None
        if not isinstance(self.options, dict) or not isinstance(self.inputs, dict):
            raise BestieError("store is damaged (options/inputs are not JSON objects)", self.path)

    def header(self) -> dict:
        return _header(self.stage, self.options, self.inputs, self.shard)

    def __contains__(self, image_id: str) -> bool:
        return f"images/{image_id}" in self._h5

    def __len__(self) -> int:
        return len(self.image_ids)

    def read(self, image_id: str) -> dict[str, np.ndarray]:
        """All datasets of one image as numpy arrays (names as written by the stage)."""
        try:
            gid = h5g.open(self._h5.id, f"images/{image_id}".encode())
        except KeyError:
            raise BestieError(f"image {image_id} is not in this store", self.path) from None
        try:
            return {name.decode(): _read_array(h5d.open(gid, name)) for name in gid}
        except (OSError, KeyError, ValueError, TypeError) as e:  # a damaged (e.g. truncated) file
            raise BestieError(f"store is damaged: cannot read image {image_id} ({type(e).__name__})",
                              self.path) from None

    def image_attrs(self, image_id: str) -> dict:
        return dict(self._h5[f"images/{image_id}"].attrs)

    def shape(self, image_id: str, name: str) -> tuple[int, ...]:
        """Shape of one image's dataset ``name``, read from its header (no data read)."""
        return tuple(self._h5[f"images/{image_id}/{name}"].shape)

    def attr_totals(self) -> dict[str, int]:
        """Integer attributes of every image group summed over the store (the stages' per-image
        warning counts), sorted by name."""
        total: dict[str, int] = {}
        for g in self._h5["images"].values():
            for k, v in g.attrs.items():
                total[k] = total.get(k, 0) + int(v)
        return dict(sorted(total.items()))

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
            ``$BESTIE_PART_SIZE`` or 64); it never changes the final store.

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
        self.header = _header(stage, options, inputs, shard_s)
        self.header["image_ids_sha"] = ids_digest(self.image_ids)
        self.part_size = default_part_size() if part_size is None else int(part_size)
        self._buffer: list[tuple[str, Mapping, Mapping | None]] = []
        self._done: dict[str, Path] = {}
        self.is_current = False

        if self.path.exists():
            try:
                with Store(self.path) as old:
                    old_h = old.header()
                    old_h["image_ids_sha"] = ids_digest(old.image_ids)
            except BestieError:
                old_h = None
            if old_h == self.header:
                self.is_current = True
                self._drop_finished_parts()
                return
            if not force:
                if old_h is None:
                    raise StaleOutputError("exists and is not a store of this stage; rerun with --force to replace it", self.path)
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
                    ids = list(h5["images"].keys()) if "images" in h5 else []
            except OSError:
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

    def add(self, image_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping | None = None) -> None:
        """Queue one image's arrays; every ``part_size`` images are written as a part."""
        interrupt.check()
        self._buffer.append((image_id, arrays, attrs))
        if len(self._buffer) >= self.part_size:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        n = len(list(self.parts_dir.glob("part-*.h5")))
        while (p := self.parts_dir / f"part-{n:06d}.h5").exists():
            n += 1
        ensure_free_space(p, sum(np.asarray(a).nbytes + 4096 for _, arrays, _ in self._buffer for a in arrays.values()))
        try:
            with atomic_path(p) as tmp:
                with h5py.File(tmp, "w", track_order=True) as h5:
                    for image_id, arrays, attrs in self._buffer:
                        _write_group(h5, image_id, arrays, attrs)
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
        ensure_free_space(self.path, sum(p.stat().st_size for p in set(self._done.values())))
        opened: dict[Path, h5py.File] = {}
        try:
            with atomic_path(self.path) as tmp:
                with h5py.File(tmp, "w", track_order=True) as out:
                    a = out.attrs
                    a["stage"] = self.header["stage"]
                    a["format"] = FORMAT
                    a["version"] = __version__
                    a["options"] = json.dumps(self.header["options"], sort_keys=True)
                    a["inputs"] = json.dumps(self.header["inputs"], sort_keys=True)
                    a["shard"] = self.header["shard"]
                    _write_ids(out, "meta/image_ids", self.image_ids)
                    _write_ids(out, "meta/split_ids", self.split_ids)
                    out.create_group("images", track_order=True)
                    for image_id in self.image_ids:
                        p = self._done[image_id]
                        if p not in opened:
                            opened[p] = h5py.File(p, "r")
                        copy_group(opened[p]["images"][image_id], out, image_id)
        finally:
            for h in opened.values():
                h.close()
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        self.is_current = True
        return self.path


def merge_stores(parts: Sequence[str | os.PathLike], out: str | os.PathLike, force: bool = False) -> Path:
    """Join shard stores (``--shard I/N`` outputs) into one store.

    All parts must share stage, options and inputs; their images must not overlap and together
    must cover the split. Returns the path of the merged store.
    """
    stores = [Store(p) for p in parts]
    try:
        if not stores:
            raise BestieError("no parts to merge")
        first = stores[0]
        for s in stores[1:]:
            for what in ("stage", "options", "inputs", "split_ids"):
                if getattr(s, what) != getattr(first, what):
                    raise BestieError(f"{what} differ from those of {first.path}", s.path)
        seen: dict[str, Path] = {}
        for s in stores:
            for i in s.image_ids:
                if i in seen:
                    raise BestieError(f"image {i} is also in {seen[i]} (overlapping shards)", s.path)
                seen[i] = s.path
        missing = [i for i in first.split_ids if i not in seen]
        if missing:
            raise BestieError(f"{len(missing)} images of the split are in no part (first: {missing[0]})", out)
        w = StoreWriter(out, first.stage, first.options, first.inputs, first.split_ids, force=force)
        if w.is_current:
            return w.path
        by_id = {i: s for s in stores for i in s.image_ids}
        for image_id in w.pending:
            s = by_id[image_id]
            w.add(image_id, s.read(image_id), s.image_attrs(image_id))
        return w.finish()
    finally:
        for s in stores:
            s.close()
