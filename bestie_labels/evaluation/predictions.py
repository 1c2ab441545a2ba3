"""Read and validate a COCO results file of instance masks.

A results file is a JSON list of ``{"image_id": int, "category_id": int, "segmentation":
{"size": [h, w], "counts": str | list[int]} | [[x0, y0, ...], ...], "score": float}``, as
detectron2, MMDetection and pycocotools' ``loadRes`` read them (other keys, e.g. ``bbox``, are
ignored); an instances JSON is read as results of its annotations (score 1 where none is
given, crowd regions left out). Image ids are the dataset's
COCO ids (:attr:`Record.coco_id`), category ids the dataset's own (a COCO dataset's JSON ids,
1..C in class order for VOC and folder data). Every problem raises
:class:`BestieError` naming the file and the entry index; a malformed compressed RLE is caught
before pycocotools ever decodes it (its C decoder does not check the run lengths; see
:func:`bestie_labels.core.rle.decode_counts_totals`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import BestieError
from ..core.fileio import read_json
from ..core.rle import decode_counts_totals, from_uncompressed


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
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        # an instances JSON (GT, another tool's export): its annotations are results of score 1
        # unless they carry one; crowd regions and labelme's special categories are no
        # predictions (COCOeval ignores crowd regions in GT; the datasets leave those out)
        from ..datasets.coco import BACKGROUND, IGNORE

        special = {c.get("id") for c in data.get("categories") or [] if isinstance(c, dict)
                   and c.get("name") in (BACKGROUND, IGNORE)}
        _check_category_names(path, data.get("categories"), dataset.category_map(), special)
        data = [dict(a, score=a.get("score", 1.0)) if isinstance(a, dict) else a for a in data["annotations"]
                if not (isinstance(a, dict) and (a.get("iscrowd") or a.get("category_id") in special))]
    if not isinstance(data, list):
        _fail(path, None, f"expected a JSON list of COCO results or an instances JSON, got {type(data).__name__}")
    per_image: dict[str, list[int]] = {r.image_id: [] for r in dataset.records}
    cls = np.zeros(len(data), np.int64)
    score = np.zeros(len(data), np.float64)
    compressed: list[int] = []  # entries whose counts are a compressed string, in file order
    rles: list = [None] * len(data)
    cats = dataset.category_map()
    for i, e in enumerate(data):
        rec, cls[i], score[i] = _check_entry(path, i, e, dataset, cats)
        rles[i], given_compressed = _check_rle(path, i, e["segmentation"], rec)
        if given_compressed:
            compressed.append(i)
        per_image[rec.image_id].append(i)
    _check_compressed_totals(path, rles, compressed)
    out = {}
    for image_id, idx in per_image.items():
        idx = np.asarray(idx, np.int64)
        out[image_id] = ImagePredictions([rles[j] for j in idx], cls[idx], score[idx], idx)
    return out


def _check_category_names(path, categories, cats, special: set) -> None:
    """An instances JSON names its categories: each id it shares with the dataset must carry
    the dataset's name, else the file was made for another dataset (a VOC export's 1..20 read
    against COCO's 1..90 would score cats as bicycles). BestieError names the first mismatch."""
    if not isinstance(categories, list):
        return
    names = {int(c["id"]): c["name"] for c in cats.categories}
    for k, c in enumerate(categories):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or c.get("id") in special:
            continue
        ours = names.get(int(c["id"]))
        if ours is not None and str(c.get("name")) != ours:
            raise BestieError(f"categories[{k}]: id {c['id']} is {_short(c.get('name'))} in this file but "
                              f"{ours!r} in the dataset: a file made for another dataset?", path)


def _check_entry(path, i: int, e, dataset, cats) -> tuple:
    """``(record, class 0..C-1, score)`` of results entry ``i``; its keys, image id, category id
    and score are checked (one-line BestieError naming the entry)."""
    if not isinstance(e, dict):
        _fail(path, i, f"expected an object, got {type(e).__name__}")
    for key in ("image_id", "category_id", "segmentation", "score"):
        if key not in e:
            _fail(path, i, f"missing '{key}'")
    iid = e["image_id"]
    rec = dataset.record_by_coco_id(iid) if _is_int(iid) else None
    if rec is None:
        _fail(path, i, f"image_id {_short(iid)} is not in split '{getattr(dataset, 'split', '?')}'")
    cid = e["category_id"]
    cls = cats.class_of(cid) if _is_int(cid) else None
    if cls is None:
        _fail(path, i, f"category_id {_short(cid)} is not a category of the dataset ({cats.describe()})")
    s = e["score"]
    if not isinstance(s, (int, float, np.integer, np.floating)) or isinstance(s, bool) or not _finite(s):
        _fail(path, i, f"score {_short(s)} is not a finite number")
    return rec, cls, float(s)


def _check_rle(path, i: int, seg, rec) -> tuple[dict, bool]:
    """``(rle, given_compressed)``: the RLE of entry ``i`` as ``{"size": [h, w], "counts":
    bytes}``, and whether its counts came compressed (those are checked later, all at once, by
    :func:`_check_compressed_totals`). Its size must be the image's; uncompressed counts are
    checked and compressed here. Polygons are checked as the COCO reader checks GT polygons."""
    if isinstance(seg, list):
        return _polygon_rle(path, i, seg, rec), False
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        _fail(path, i, "segmentation must be an RLE object with 'size' and 'counts', or polygons")
    size = seg["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(v) and v >= 0 for v in size)):
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
        return {"size": [h, w], "counts": b}, True
    if isinstance(cnt, list):
        if not all(_is_int(v) and v >= 0 for v in cnt):
            _fail(path, i, "RLE counts list must hold non-negative integers")
        if sum(cnt) != h * w:
            _fail(path, i, f"RLE counts sum to {_short(sum(cnt))}, expected {h}*{w} = {h * w}")
        return from_uncompressed([int(v) for v in cnt], h, w), False
    _fail(path, i, f"RLE counts must be a string or a list, got {type(cnt).__name__}")


def _polygon_rle(path, i: int, seg: list, rec) -> dict:
    """The RLE ``{"size", "counts": bytes}`` of entry ``i``'s polygons ``[[x0, y0, ...], ...]``."""
    from pycocotools import mask as mask_utils

    from ..datasets.coco_checks import polygon_problem, valid_polygons

    problem = polygon_problem(seg, rec.height, rec.width)
    polys = [] if problem else valid_polygons(seg)
    if not polys:
        _fail(path, i, f"segmentation: {problem or 'no polygon of 3 points or more'}")
    return mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in p] for p in polys], rec.height, rec.width))


def _check_compressed_totals(path, rles: list, entries: list[int]) -> None:
    """Decode the compressed counts of ``entries`` in one batch: each must be well formed and
    cover its image (pycocotools would decode a malformed string into a wrong mask)."""
    ok, total = decode_counts_totals([rles[i]["counts"] for i in entries])
    expect = np.array([rles[i]["size"][0] * rles[i]["size"][1] for i in entries], np.int64)
    bad = np.flatnonzero(~ok | (total != expect))
    if len(bad):
        j = bad[0]  # the first bad entry in file order (entries are listed in file order)
        if not ok[j]:
            _fail(path, entries[j], "malformed compressed RLE counts string")
        h, w = rles[entries[j]]["size"]
        _fail(path, entries[j], f"RLE counts cover {total[j]} pixels, expected {h}*{w} = {h * w}")
