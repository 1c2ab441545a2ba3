"""COCO instances reader: an instances JSON plus an image folder.

Category ids are remapped to 0-based classes in increasing id order, named by the categories'
``name``; labelme's ``_background_`` and ``__ignore__`` categories are no classes (their
regions are background and void). Images are listed by increasing id and keep the JSON's id as ``coco_id`` (so that
predictions can be evaluated against the same JSON). Masks come from pycocotools'
``annToMask`` (polygons, RLE or uncompressed RLE); crowd annotations are kept with
``crowd=True`` (evaluation ignores them). A COCO JSON has no splits: the file *is* the split,
named by its stem (``instances_val2017``), whatever ``--split`` says, so that the same images are
never reported under another split name; validation takes another JSON (``--val-data``).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.constants import MAX_SIDE
from ..core.errors import BestieError
from ..core.fileio import read_json
from ..core.rle import decode_counts_totals
from .base import Dataset, GtInstances, Record
from .coco_checks import check_annotations, is_int
from .ids import CategoryIds


@dataclass
class CocoDataset(Dataset):
    """A COCO instances split; ``load_gt`` decodes the annotations of one image."""

    size_source = "its COCO JSON entry"

    json_path: Path | None = None
    coco: object = field(default=None, repr=False)
    cat_index: dict = field(default_factory=dict, repr=False)
    json_ids: list = field(default_factory=list, repr=False)
    #: the JSON's ``categories`` entries in class order, and each image's ``file_name`` as written
    json_categories: list = field(default_factory=list, repr=False)
    json_file_names: dict = field(default_factory=dict, repr=False)
    #: ``{image id: [annotation]}`` of labelme's ``__ignore__`` regions (void)
    void_anns: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        # Keep the JSON's own image ids: predictions then evaluate against the same JSON.
        if self.json_ids:
            for r, i in zip(self.records, self.json_ids):
                r.coco_id = int(i)
            self._by_coco = {r.coco_id: r for r in self.records}

    def category_map(self) -> CategoryIds:
        """The JSON's own ``categories`` entries (ids with gaps kept), in class order."""
        return CategoryIds(tuple(self.json_categories)) if self.json_categories else super().category_map()

    def coco_file_name(self, rec: Record) -> str:
        return self.json_file_names.get(rec.coco_id) or super().coco_file_name(rec)

    def _decode(self, ann: dict, rec: Record) -> np.ndarray:
        """``(H, W) uint8`` mask of one annotation of ``rec``, checked (one-line errors)."""
        h, w = rec.height, rec.width
        if not ann.get("segmentation"):
            raise BestieError(f"annotation {ann.get('id')} has no segmentation", self.json_path)
        if isinstance(ann["segmentation"], dict):
            problem = _check_rle(ann["segmentation"], h, w)
            if problem:
                raise BestieError(f"annotation {ann.get('id')}: {problem}", self.json_path)
        try:
            m = self.coco.annToMask(ann)
        except Exception as e:  # pycocotools raises assorted types on bad polygons / RLE
            raise BestieError(f"annotation {ann.get('id')}: cannot decode segmentation "
                              f"({type(e).__name__}: {e})", self.json_path) from None
        if m.shape != (h, w):
            raise BestieError(f"annotation {ann.get('id')}: mask is {m.shape[1]}x{m.shape[0]} "
                              f"but image {rec.coco_id} is {w}x{h}", self.json_path)
        return m

    def load_gt(self, rec: Record) -> GtInstances:
        """``masks (N, H, W) bool`` of every annotation of the image (JSON order), crowd kept."""
        anns = self.coco.imgToAnns.get(rec.coco_id, [])
        h, w = rec.height, rec.width
        masks = np.zeros((len(anns), h, w), bool)
        classes = np.zeros(len(anns), np.int64)
        crowd = np.zeros(len(anns), bool)
        for n, ann in enumerate(anns):
            masks[n] = self._decode(ann, rec).astype(bool)
            classes[n] = self.cat_index[ann["category_id"]]
            crowd[n] = bool(ann.get("iscrowd", 0))
        void = np.zeros((h, w), bool)
        for ann in self.void_anns.get(rec.coco_id, []):
            void |= self._decode(ann, rec).astype(bool)
        return GtInstances(masks=masks, classes=classes, crowd=crowd, void=void)


def _is_size(v) -> bool:
    """An image side accepted from a JSON: up to the JPEG limit; beyond it a typo, not an image."""
    return is_int(v) and 0 < v <= MAX_SIDE


def _check_fields(obj: dict, checks: dict, where: str, path: Path) -> None:
    """Each ``key`` of ``checks`` must be in ``obj`` and pass its check (a one-line error)."""
    for key, ok in checks.items():
        if key not in obj:
            raise BestieError(f"{where} has no '{key}'", path)
        if not ok(obj[key]):
            v = repr(obj[key])
            raise BestieError(f"{where}: bad '{key}' {v[:40]}", path)


def _check_rle(seg, h: int, w: int) -> str | None:
    """What is wrong with an RLE segmentation (``{"size", "counts"}``), or None.

    pycocotools decodes a malformed compressed string without complaint (into a wrong mask), so
    the counts are checked first."""
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(is_int(v) for v in size)):
        return f"RLE size {size!r} is not [height, width]"
    if tuple(size) != (h, w):
        return f"RLE size {size[0]}x{size[1]} differs from the image's {h}x{w}"
    if isinstance(counts, str):
        try:
            b = counts.encode("ascii")
        except UnicodeEncodeError:
            return "RLE counts string has non-ASCII characters"
        ok, total = decode_counts_totals([b])
        if not ok[0]:
            return "malformed compressed RLE counts string"
        if total[0] != h * w:
            return f"RLE counts cover {total[0]} pixels, expected {h * w}"
    elif isinstance(counts, list):
        if not all(is_int(v) and v >= 0 for v in counts) or sum(counts) != h * w:
            return f"uncompressed RLE counts must be non-negative integers summing to {h * w}"
    else:
        return f"RLE counts must be a string or a list, got {type(counts).__name__}"
    return None


def _check_layout(data, json_path: Path) -> None:
    """The three lists of objects, and the fields of every category and image."""
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise BestieError("not a COCO instances file (needs images, annotations, categories)", json_path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise BestieError(f"'{key}' must be a list, got {type(data[key]).__name__}", json_path)
        for n, obj in enumerate(data[key]):
            if not isinstance(obj, dict):
                raise BestieError(f"{key}[{n}] must be an object, got {type(obj).__name__}", json_path)
    for n, c in enumerate(data["categories"]):
        _check_fields(c, {"id": is_int, "name": lambda v: isinstance(v, str)}, f"categories[{n}]", json_path)
    for n, im in enumerate(data["images"]):
        _check_fields(im, {"id": is_int, "file_name": lambda v: isinstance(v, str) and v != "",
                           "height": _is_size, "width": _is_size}, f"images[{n}]", json_path)


#: labelme's special categories (labelme2coco writes ``_background_`` as category 0): not
#: instance classes. ``_background_`` regions are background, ``__ignore__`` regions void.
BACKGROUND, IGNORE = "_background_", "__ignore__"


def _categories(data: dict, json_path: Path) -> tuple[dict[int, int], list[str], list[dict]]:
    """``{category id: class index}`` (ids in increasing order), the class names and the
    ``categories`` entries (id, name, supercategory) in class order; labelme's special
    categories are left out (:func:`_take_special`)."""
    cats = sorted((c for c in data["categories"] if c["name"] not in (BACKGROUND, IGNORE)), key=lambda c: c["id"])
    if not cats:
        raise BestieError("no categories", json_path)
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    if len(cat_index) != len(cats):
        raise BestieError("duplicate category ids", json_path)
    class_names = [str(c["name"]) for c in cats]
    if len(set(class_names)) != len(class_names):
        raise BestieError("duplicate category names", json_path)
    return cat_index, class_names, [{"id": int(c["id"]), "name": str(c["name"]),
                                     "supercategory": str(c.get("supercategory", "object"))} for c in cats]


def _take_special(data: dict) -> dict[int, list[dict]]:
    """Take the annotations of labelme's special categories out of ``data["annotations"]``:
    ``_background_`` ones are dropped (background is what no instance covers); ``__ignore__``
    ones are returned as ``{image id: [annotation]}``, the image's void region."""
    special = {c["id"]: c["name"] for c in data["categories"] if c["name"] in (BACKGROUND, IGNORE)}
    if not special:
        return {}
    keep, void = [], {}
    for a in data["annotations"]:
        role = special.get(a.get("category_id"))
        if role is None:
            keep.append(a)
        elif role == IGNORE:
            void.setdefault(a.get("image_id"), []).append(a)
    data["annotations"] = keep
    return void


def _image_labels(data: dict, cat_index: dict[int, int], json_path: Path) -> dict[int, np.ndarray]:
    """``{image id: (C,) bool}``: the categories annotated in each image (crowd included)."""
    img_ids = {im["id"] for im in data["images"]}
    if len(img_ids) != len(data["images"]):
        raise BestieError("duplicate image ids", json_path)
    labels: dict[int, np.ndarray] = {i: np.zeros(len(cat_index), bool) for i in img_ids}
    for ann in data["annotations"]:
        cid, iid = ann.get("category_id"), ann.get("image_id")
        if not is_int(cid) or cid not in cat_index:
            raise BestieError(f"annotation {ann.get('id')}: unknown category id {cid}", json_path)
        if not is_int(iid) or iid not in labels:
            raise BestieError(f"annotation {ann.get('id')}: unknown image id {iid}", json_path)
        labels[iid][cat_index[cid]] = True
    return labels


def _records(data: dict, labels: dict[int, np.ndarray], images: Path, json_path: Path) -> tuple[list, list[int]]:
    """One record per image (by id; the image id is the file stem) and the JSON ids in that order."""
    records, json_ids, seen = [], [], set()
    for im in sorted(data["images"], key=lambda im: im["id"]):
        path = images / im["file_name"]
        stem = Path(im["file_name"]).stem
        if stem in seen:
            raise BestieError(f"two images share the name {stem}", json_path)
        seen.add(stem)
        if not path.is_file():
            raise BestieError(f"image {im['id']} of {json_path.name} not found", path)
        records.append(Record(image_id=stem, file_name=str(path.resolve()), height=int(im["height"]),
                              width=int(im["width"]), labels=labels[im["id"]]))
        json_ids.append(int(im["id"]))
    return records, json_ids


def open_coco(json_path: str | os.PathLike, images: str | os.PathLike | None,
              split: str | None = None) -> CocoDataset:
    """Open a COCO instances JSON whose ``file_name``s live under the folder ``images``.

    ``split`` is ignored: the dataset's ``split`` is the JSON's stem (a JSON has no splits).
    Image-level labels are the categories annotated in each image (crowd included).
    """
    from pycocotools.coco import COCO

    json_path = Path(json_path)
    if images is None:
        raise BestieError("a COCO dataset needs its image folder (--images DIR)", json_path)
    images = Path(images)
    if not images.is_dir():
        raise BestieError("image folder not found", images)
    data = read_json(json_path)
    _check_layout(data, json_path)
    check_annotations(data, json_path)
    cat_index, class_names, json_categories = _categories(data, json_path)
    void_anns = _take_special(data)
    records, json_ids = _records(data, _image_labels(data, cat_index, json_path), images, json_path)

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return CocoDataset(root=json_path.resolve(), split=json_path.stem, class_names=class_names,
                       records=records, kind="coco", extra_fingerprint={"json": json_path.name}, has_splits=False,
                       json_path=json_path, coco=coco, cat_index=cat_index, json_ids=json_ids,
                       json_categories=json_categories, void_anns=void_anns,
                       json_file_names={int(im["id"]): str(im["file_name"]) for im in data["images"]})
