"""How two store headers differ, in words: what a refused store or part says changed."""

from __future__ import annotations

from typing import Iterable, Mapping


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
    from .fileio import sha256_json

    return sha256_json(list(ids))
