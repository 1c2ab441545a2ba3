"""COCO run-length encoding helpers over pycocotools, shared by export, evaluation and predict.

Every RLE the project writes is a dict ``{"size": [H, W], "counts": str}`` (compressed COCO RLE
with ``counts`` decoded to ``str`` so that it serialises as JSON).
"""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util


def instance_masks(instances: np.ndarray, n: int | None = None) -> np.ndarray:
    """Split an instance map into binary masks.

    Args:
        instances: ``(H, W)`` integer map, 0 = no instance, ``k`` = instance ``k - 1``.
        n: number of instances (default: the map's maximum).

    Returns:
        ``(n, H, W) bool``; mask ``k`` is ``instances == k + 1``.
    """
    instances = np.asarray(instances)
    if n is None:
        n = int(instances.max()) if instances.size else 0
    return instances[None] == np.arange(1, n + 1, dtype=instances.dtype)[:, None, None]


def encode(masks: np.ndarray) -> list[dict]:
    """Encode ``(N, H, W)`` (or one ``(H, W)``) boolean masks as JSON-ready COCO RLEs.

    Returns a list of ``{"size": [H, W], "counts": str}`` (one dict if a single mask was given).
    """
    masks = np.asarray(masks)
    single = masks.ndim == 2
    if single:
        masks = masks[None]
    h, w = masks.shape[1:]
    if masks.shape[0] == 0:
        return []
    # pycocotools wants (H, W, N) uint8 in Fortran order.
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    out = [{"size": [int(h), int(w)], "counts": r["counts"].decode("ascii")} for r in rles]
    return out[0] if single else out


def _native(rle: dict | list) -> dict | list:
    def one(r):
        c = r["counts"]
        if isinstance(c, list):  # uncompressed RLE: let pycocotools compress it
            return mask_util.frPyObjects(r, *r["size"])
        return {"size": list(r["size"]), "counts": c.encode("ascii") if isinstance(c, str) else c}

    return [one(r) for r in rle] if isinstance(rle, list) else one(rle)


def decode(rles: dict | list[dict]) -> np.ndarray:
    """Decode one RLE to ``(H, W) bool`` or a list of RLEs to ``(N, H, W) bool``."""
    if isinstance(rles, list):
        if not rles:
            return np.zeros((0, 0, 0), bool)
        return mask_util.decode(_native(rles)).transpose(2, 0, 1).astype(bool)
    return mask_util.decode(_native(rles)).astype(bool)


def bbox(rles: dict | list[dict]) -> np.ndarray:
    """COCO boxes ``[x, y, w, h]`` as ``(4,) float64`` for one RLE or ``(N, 4)`` for a list."""
    if isinstance(rles, list):
        return mask_util.toBbox(_native(rles)).reshape(-1, 4) if rles else np.zeros((0, 4))
    return mask_util.toBbox(_native(rles))


def area(rles: dict | list[dict]) -> np.ndarray:
    """Pixel count ``int`` of one RLE, or ``(N,) int64`` for a list."""
    if isinstance(rles, list):
        return mask_util.area(_native(rles)).astype(np.int64) if rles else np.zeros(0, np.int64)
    return int(mask_util.area(_native(rles)))
