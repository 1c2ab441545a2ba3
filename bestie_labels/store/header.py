"""Store headers: the one a stage run writes, and how two differ, in words (what a refused
store or part says changed)."""

from __future__ import annotations

import json
from typing import Iterable, Mapping


def make_header(stage: str, fmt: int, options: Mapping, inputs: Mapping, shard: str) -> dict:
    """``{"stage", "format", "options", "inputs", "shard"}`` as JSON reads it back, so that
    tuples, paths and numpy scalars compare equal to what a store holds."""
    return json.loads(json.dumps({"stage": stage, "format": fmt, "options": dict(options),
                                  "inputs": dict(inputs), "shard": shard}, default=str))


def text(v) -> str:
    """An HDF5 string attribute or dataset element as ``str``."""
    return v.decode() if isinstance(v, bytes) else str(v)


def describe_change(old: Mapping, new: Mapping) -> str:
    """What differs between two flattened headers, short: a changed input is named (its
    fingerprint is a long hash that says nothing), a changed option shows both values."""
    if old.get("stage") != new.get("stage"):
        return f"it is a {old.get('stage')!r} store, not a {new.get('stage')!r} store"
    keys = sorted(set(old) | set(new))
    diffs = []
    for k in keys:
        if old.get(k) == new.get(k):
            continue
        if k.startswith("inputs.") or k == "image_ids_sha":
            what = {"image_ids_sha": "the image list"}.get(k, k)
            state = "added" if k not in old else "removed" if k not in new else "changed"
            diffs.append(f"{what} {state}")
        else:
            diffs.append(f"{k}: {old.get(k)!r} -> {new.get(k)!r}")
    return ", ".join(diffs[:4]) + (" ..." if len(diffs) > 4 else "")


def flat(h: Mapping) -> dict:
    """A header with its nested mappings flattened to ``"options.min_area"``-style keys."""
    out = {}
    for k, v in h.items():
        if isinstance(v, Mapping):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def ids_digest(ids: Iterable[str]) -> str:
    """SHA-256 of an image-id list (what a header records instead of the list)."""
    from ..core.fileio import sha256_json

    return sha256_json(list(ids))
