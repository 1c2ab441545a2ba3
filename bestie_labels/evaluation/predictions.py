"""Read and validate a COCO results file of instance masks.

A results file is a JSON list of ``{"image_id": int, "category_id": int, "segmentation":
{"size": [h, w], "counts": str | list[int]}, "score": float}``. Image ids are the dataset's
COCO ids (:attr:`Record.coco_id`), category ids are 1..C in class order. Every problem raises
:class:`BestieError` naming the file and the entry index; a malformed compressed RLE is caught
before pycocotools ever decodes it (its C decoder does not check the run lengths).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import BestieError
from ..fileio import read_json


@dataclass
class ImagePredictions:
    """The predictions of one image.

    Attributes:
        rles: P compressed RLEs (``{"size": [h, w], "counts": bytes}``).
        classes: ``(P,) int64`` 0-based classes.
        scores: ``(P,) float64``.
        entries: ``(P,) int64`` index of each prediction in the results list.
    """

    rles: list = field(default_factory=list)
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    entries: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.rles)


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


def _fail(path, index: int | None, problem: str):
    where = f"entry {index}: " if index is not None else ""
    raise BestieError(f"{where}{problem}", path)


def _finite(v) -> bool:
    """``math.isfinite`` that also says False for an int too large for a float (JSON allows it)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _short(v: Any, n: int = 40) -> str:
    """``repr(v)`` cut to ``n`` characters (a huge value must not make a huge message)."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def read_predictions(source: str | os.PathLike | list, dataset, path_for_errors=None
                     ) -> dict[str, ImagePredictions]:
    """Read, validate and group a COCO results list by image.

    Args:
        source: the path of a results JSON, or the already-loaded list.
        dataset: a :class:`~bestie_labels.datasets.base.Dataset` (the split evaluated).
        path_for_errors: the name used in error messages when ``source`` is a list.

    Returns:
        ``{image_id (stem): ImagePredictions}`` for every record of the split (images without
        predictions get an empty entry).

    Raises:
        BestieError: not a list, an entry that is not an object or misses a key, an image id
        not in the split, a category id outside 1..C, a non-finite score, a malformed RLE or an
        RLE whose size differs from the image's.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        data = read_json(path)
    else:
        path = path_for_errors or "<predictions>"
        data = source
    if not isinstance(data, list):
        _fail(path, None, f"expected a JSON list of COCO results, got {type(data).__name__}")
    num_classes = dataset.num_classes
    split = getattr(dataset, "split", "?")

    per_image: dict[str, list[int]] = {r.image_id: [] for r in dataset.records}
    rec_of: list = [None] * len(data)
    cls = np.zeros(len(data), np.int64)
    score = np.zeros(len(data), np.float64)
    counts: list[bytes] = []
    counts_entry: list[int] = []
    rles: list = [None] * len(data)
    for i, e in enumerate(data):
        if not isinstance(e, dict):
            _fail(path, i, f"expected an object, got {type(e).__name__}")
        for key in ("image_id", "category_id", "segmentation", "score"):
            if key not in e:
                _fail(path, i, f"missing '{key}'")
        iid = e["image_id"]
        rec = dataset.record_by_coco_id(iid) if _is_int(iid) else None
        if rec is None:
            _fail(path, i, f"image_id {_short(iid)} is not in split '{split}'")
        cid = e["category_id"]
        if not _is_int(cid) or not 1 <= cid <= num_classes:
            _fail(path, i, f"category_id {_short(cid)} is not in 1..{num_classes}")
        s = e["score"]
        if not isinstance(s, (int, float, np.integer, np.floating)) or isinstance(s, bool) \
                or not _finite(s):
            _fail(path, i, f"score {_short(s)} is not a finite number")
        seg = e["segmentation"]
        if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
            _fail(path, i, "segmentation must be an RLE object with 'size' and 'counts'")
        size = seg["size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2
                and all(_is_int(v) and v >= 0 for v in size)):
            _fail(path, i, f"RLE size {_short(size)} is not [height, width]")
        h, w = int(size[0]), int(size[1])
        if (h, w) != (rec.height, rec.width):
            _fail(path, i, f"RLE size {h}x{w} (h x w) differs from image {rec.image_id} "
                           f"({rec.height}x{rec.width})")
        cnt = seg["counts"]
        if isinstance(cnt, (str, bytes)):
            try:
                b = cnt.encode("ascii") if isinstance(cnt, str) else bytes(cnt)
            except UnicodeEncodeError:
                _fail(path, i, "RLE counts string has non-ASCII characters")
            counts.append(b)
            counts_entry.append(i)
            rles[i] = {"size": [h, w], "counts": b}
        elif isinstance(cnt, list):
            if not all(_is_int(v) and v >= 0 for v in cnt):
                _fail(path, i, "RLE counts list must hold non-negative integers")
            if sum(cnt) != h * w:
                _fail(path, i, f"RLE counts sum to {_short(sum(cnt))}, expected {h}*{w} = {h * w}")
            rles[i] = mask_utils.frPyObjects({"size": [h, w], "counts": [int(v) for v in cnt]}, h, w)
        else:
            _fail(path, i, f"RLE counts must be a string or a list, got {type(cnt).__name__}")
        rec_of[i] = rec
        cls[i] = cid - 1
        score[i] = float(s)
        per_image[rec.image_id].append(i)

    ok, total = decode_counts_totals(counts)
    entry = np.asarray(counts_entry, np.int64)
    expect = np.array([rles[i]["size"][0] * rles[i]["size"][1] for i in counts_entry], np.int64)
    bad = np.flatnonzero(~ok | (total != expect))
    if len(bad):
        j = bad[0]  # the first bad entry in file order (counts are listed in file order)
        if not ok[j]:
            _fail(path, int(entry[j]), "malformed compressed RLE counts string")
        h, w = rles[entry[j]]["size"]
        _fail(path, int(entry[j]), f"RLE counts cover {total[j]} pixels, expected {h}*{w} = {h * w}")

    out = {}
    for image_id, idx in per_image.items():
        idx = np.asarray(idx, np.int64)
        out[image_id] = ImagePredictions([rles[j] for j in idx], cls[idx], score[idx], idx)
    return out
