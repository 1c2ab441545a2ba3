"""Join the stores of a sharded run (``--shard I/N``) into one store: ``bestie-labels merge``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..core.errors import BestieError
from .file import Store, StoreWriter


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
            for what, words in (("stage", f"is a {s.stage} store but {first.path} is a {first.stage} store"),
                                ("options", f"was made with other options than {first.path}"),
                                ("inputs", f"was made from other inputs than {first.path}"),
                                ("split_ids", f"holds shards of another split than {first.path}")):
                if getattr(s, what) != getattr(first, what):
                    raise BestieError(words, s.path)
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
            w.add(image_id, s.encoded(image_id), s.image_attrs(image_id))
        return w.finish()
    finally:
        for s in stores:
            s.close()
