"""Test helpers over stores: rewrite one image's arrays (a damaged or edited store)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from bestie_labels.store.file import Store, StoreWriter


def read_image(path: Path, image_id: str) -> dict[str, np.ndarray]:
    """The arrays of one image of the store ``path``."""
    with Store(path) as s:
        return s.read(image_id)


def edit_store(path: Path, image_id: str, edit: Callable[[dict], dict]) -> None:
    """Rewrite ``path`` with ``edit(arrays)`` in place of one image's arrays; header, other
    images and attributes kept. The writer does not validate values, so this makes the damaged
    stores (a class out of range, a missing array) that the readers must refuse."""
    with Store(path) as s:
        images = {i: s.read(i) for i in s.image_ids}
        attrs = {i: s.image_attrs(i) for i in s.image_ids}
        shard = tuple(int(x) for x in s.shard.split("/")) if s.shard else None
        stage, options, inputs, split_ids = s.stage, s.options, s.inputs, s.split_ids
    images[image_id] = edit(dict(images[image_id]))
    tmp = path.with_name("edited-" + path.name)
    w = StoreWriter(tmp, stage, options, inputs, split_ids, shard=shard)
    for i in w.pending:
        w.add(i, images[i], attrs[i] or None)
    w.finish()
    os.replace(tmp, path)


def set_array(path: Path, image_id: str, name: str, value: np.ndarray | None) -> None:
    """Replace (or with None remove) one image's array ``name``."""
    def edit(arrays: dict) -> dict:
        arrays.pop(name)
        if value is not None:
            arrays[name] = np.asarray(value)
        return arrays

    edit_store(path, image_id, edit)
