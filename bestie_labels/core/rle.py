"""COCO run-length encoding over pycocotools: the project's one home for RLE encoding, decoding
and validation (export, datasets, evaluation and predict all use it).

Every RLE the project writes is a dict ``{"size": [H, W], "counts": str}`` (compressed COCO RLE
with ``counts`` decoded to ``str`` so that it serialises as JSON); :func:`encode_masks` gives
pycocotools' own form (``counts`` bytes) for in-memory evaluation.
"""

from __future__ import annotations

from typing import Sequence

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


def encode_masks(masks: np.ndarray) -> list[dict]:
    """``(N, H, W) bool`` -> N compressed RLEs in pycocotools' form (``counts`` bytes)."""
    masks = np.asarray(masks)
    if masks.shape[0] == 0:
        return []
    m8 = masks.view(np.uint8) if masks.dtype == bool else masks.astype(np.uint8)
    return mask_util.encode(np.asfortranarray(m8.transpose(1, 2, 0)))


def from_uncompressed(counts: Sequence[int], height: int, width: int) -> dict:
    """An uncompressed RLE (run lengths of the column-major pixels, zeros first) compressed,
    in pycocotools' form. The caller has checked that the runs sum to ``height * width``."""
    return mask_util.frPyObjects({"size": [height, width], "counts": list(counts)}, height, width)


def iou(pred: Sequence[dict], gt: Sequence[dict]) -> np.ndarray:
    """``(P, G) float64`` mask IoU of P RLEs against G RLEs (no crowd), without decoding."""
    if not len(pred) or not len(gt):
        return np.zeros((len(pred), len(gt)), np.float64)
    out = mask_util.iou(list(pred), list(gt), [0] * len(gt))
    return np.asarray(out, np.float64).reshape(len(pred), len(gt))


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


def decode_counts_totals(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Check compressed RLE count strings without decoding any mask.

    The COCO compressed format stores each run length as 5-bit groups (character value - 48,
    bit 0x20 = more groups follow, bit 0x10 of the last group = sign), the runs after the
    third as differences to the run two before. All strings are parsed together in numpy.

    Args:
        strings: K byte strings.

    Returns:
        ``(ok (K,) bool, total (K,) int64)``: ``ok`` is False for a string with a character
        outside ``'0'..'o'``, a truncated last run, a run of more than 7 groups or a negative
        run; ``total`` is the sum of the runs (must equal h * w).
    """
    k = len(strings)
    ok = np.ones(k, bool)
    total = np.zeros(k, np.int64)
    lens = np.fromiter((len(s) for s in strings), np.int64, count=k)
    if k == 0 or lens.sum() == 0:
        return ok, total
    buf = np.frombuffer(b"".join(strings), np.uint8)
    sid = np.repeat(np.arange(k), lens)
    bad_char = (buf < 48) | (buf > 111)
    c = buf.astype(np.int64) - 48
    more = (c & 0x20) != 0
    # The last character of each non-empty string must end a run.
    last = np.cumsum(lens)[lens > 0] - 1
    np.logical_and.at(ok, sid[last], ~more[last])
    np.logical_and.at(ok, sid[bad_char], False)
    # Runs end where `more` is clear and at each string's end (so runs never cross strings).
    is_end = ~more
    is_end[last] = True
    ends = np.flatnonzero(is_end)
    starts = np.r_[0, ends[:-1] + 1]
    run_of = np.cumsum(is_end) - is_end  # run index of each character
    pos = np.arange(len(buf)) - starts[run_of]  # group position within its run
    np.logical_and.at(ok, sid[pos >= 7], False)
    pos = np.minimum(pos, 6)
    x = np.add.reduceat((c & 0x1F) << (5 * pos), starts)
    neg = (c[ends] & 0x10) != 0
    x = np.where(neg, x - (np.int64(1) << (5 * (pos[ends] + 1))), x)
    # Undo the delta coding: run j > 2 adds run j - 2, i.e. a cumulative sum along each
    # (string, parity) chain, where run 0 stands alone and runs 1, 3, ... and 2, 4, ... chain.
    rsid = sid[ends]
    first_run = np.r_[0, np.cumsum(np.bincount(rsid, minlength=k))[:-1]]
    j = np.arange(len(ends)) - first_run[rsid]
    chain = rsid * 3 + np.where(j == 0, 0, 1 + (j % 2))
    order = np.lexsort((j, chain))  # runs of one chain together, in order
    xs = x[order]
    cs = np.cumsum(xs)
    ch = chain[order]
    head = np.flatnonzero(np.r_[True, ch[1:] != ch[:-1]])
    head_of = np.cumsum(np.r_[True, ch[1:] != ch[:-1]]) - 1
    before = np.where(head > 0, cs[np.maximum(head - 1, 0)], 0)
    runs = np.empty_like(x)
    runs[order] = cs - before[head_of]
    np.logical_and.at(ok, rsid[runs < 0], False)
    total = np.bincount(rsid, weights=runs.astype(np.float64), minlength=k).astype(np.int64)
    return ok, total
