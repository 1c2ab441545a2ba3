"""Reading a stage's store as the input of another: the stage names, checked opening, and read
handles cached across images.

Every reader of an upstream store (the stages, the report, the trainer) opens it here, so that
the checks (stage, shard, every image present, same data) are made once, in one place.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..core.errors import BestieError
from .file import Store

if TYPE_CHECKING:  # the store layer is below the datasets: it names them in annotations only
    from ..datasets.base import Dataset

#: Stage names recorded in the stores (``Store(path, stage=...)``).
CUES, WSSS, PSEUDO = "cues", "wsss", "pseudo"

_STORE_CACHE: dict[tuple, Store] = {}
_CACHE_PID = os.getpid()


def cached_store(path: str | os.PathLike, stage: str) -> Store:
    """A read handle kept open across images, one per process: inside joblib workers, and in
    the trainer's DataLoader workers, which fork with the parent's handles (an HDF5 handle does
    not survive a fork, so a new process drops them, unclosed, and opens its own)."""
    global _CACHE_PID
    if os.getpid() != _CACHE_PID:
        _STORE_CACHE.clear()
        _CACHE_PID = os.getpid()
    st = os.stat(path)
    key = (os.fspath(path), stage, st.st_ino, st.st_mtime_ns, st.st_size)
    s = _STORE_CACHE.get(key)
    if s is None:
        s = _STORE_CACHE[key] = Store(path, stage=stage)
    return s


def close_cached() -> None:
    """Close the handles :func:`cached_store` keeps (at the end of a stage run)."""
    for s in _STORE_CACHE.values():
        s.close()
    _STORE_CACHE.clear()


def open_input(path: str | os.PathLike, stage: str, dataset: Dataset, option: str,
               same_data: bool = False) -> Store:
    """Open an upstream store, checking its stage and that it holds every image of ``dataset``.

    ``option`` (``"--cues"``, ...) names the command-line option in the messages. With
    ``same_data`` the store must have been made from this very split (same dataset fingerprint:
    images, image-level labels, image files), as transfer needs.
    """
    s = Store(path, stage=stage)
    try:
        if s.shard:
            raise BestieError(f"{option}: this is shard {s.shard} of a sharded run; join the parts "
                              "with `bestie-labels merge` first", path)
        missing = [i for i in dataset.image_ids if i not in s]
        if missing:
            raise BestieError(f"{option}: {len(missing)} of the {len(dataset)} images of split "
                              f"'{dataset.split}' are not in this store (first: {missing[0]})", path)
        if same_data and s.inputs.get("data") not in (None, dataset.fingerprint()):
            raise BestieError(f"{option}: made from another version of split '{dataset.split}' (other "
                              "images, image-level labels or image files, e.g. another --labels file); "
                              "rerun that stage with the same data options", path)
    except BaseException:
        s.close()
        raise
    return s
