"""COCO instances reader: an instances JSON plus an image folder.

Category ids are remapped to 0-based classes in increasing id order, named by the categories'
``name``. Images are listed by increasing id and keep the JSON's id as ``coco_id`` (so that
predictions can be evaluated against the same JSON). Masks come from pycocotools'
``annToMask`` (polygons, RLE or uncompressed RLE); crowd annotations are kept with
``crowd=True`` (evaluation ignores them). The split name is informational.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BestieError
from ..fileio import read_json
from .base import Dataset, GtInstances, Record


@dataclass
class CocoDataset(Dataset):
    """A COCO instances split; ``load_gt`` decodes the annotations of one image."""

    json_path: Path | None = None
    coco: object = field(default=None, repr=False)
    cat_index: dict = field(default_factory=dict, repr=False)
    json_ids: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        # Keep the JSON's own image ids: predictions then evaluate against the same JSON.
        if self.json_ids:
            for r, i in zip(self.records, self.json_ids):
                r.coco_id = int(i)
            self._by_coco = {r.coco_id: r for r in self.records}

    def load_gt(self, rec: Record) -> GtInstances:
        """``masks (N, H, W) bool`` of every annotation of the image (JSON order), crowd kept."""
        anns = self.coco.imgToAnns.get(rec.coco_id, [])
        h, w = rec.height, rec.width
        masks = np.zeros((len(anns), h, w), bool)
        classes = np.zeros(len(anns), np.int64)
        crowd = np.zeros(len(anns), bool)
        for n, ann in enumerate(anns):
            if not ann.get("segmentation"):
                raise BestieError(f"annotation {ann.get('id')} has no segmentation", self.json_path)
            try:
                m = self.coco.annToMask(ann)
            except Exception as e:  # pycocotools raises assorted types on bad polygons / RLE
                raise BestieError(f"annotation {ann.get('id')}: cannot decode segmentation "
                                  f"({type(e).__name__}: {e})", self.json_path) from None
            if m.shape != (h, w):
                raise BestieError(f"annotation {ann.get('id')}: mask is {m.shape[1]}x{m.shape[0]} "
                                  f"but image {rec.coco_id} is {w}x{h}", self.json_path)
            masks[n] = m.astype(bool)
            classes[n] = self.cat_index[ann["category_id"]]
            crowd[n] = bool(ann.get("iscrowd", 0))
        return GtInstances(masks=masks, classes=classes, crowd=crowd, void=np.zeros((h, w), bool))


def open_coco(json_path: str | os.PathLike, images: str | os.PathLike | None,
              split: str = "train") -> CocoDataset:
    """Open a COCO instances JSON whose ``file_name``s live under the folder ``images``.

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
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise BestieError("not a COCO instances file (needs images, annotations, categories)", json_path)
    cats = sorted(data["categories"], key=lambda c: c["id"])
    if not cats:
        raise BestieError("no categories", json_path)
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    class_names = [str(c["name"]) for c in cats]
    if len(set(class_names)) != len(class_names):
        raise BestieError("duplicate category names", json_path)
    img_ids = {im["id"] for im in data["images"]}
    if len(img_ids) != len(data["images"]):
        raise BestieError("duplicate image ids", json_path)
    labels: dict[int, np.ndarray] = {i: np.zeros(len(cats), bool) for i in img_ids}
    for ann in data["annotations"]:
        if ann.get("category_id") not in cat_index:
            raise BestieError(f"annotation {ann.get('id')}: unknown category id "
                              f"{ann.get('category_id')}", json_path)
        if ann.get("image_id") not in labels:
            raise BestieError(f"annotation {ann.get('id')}: unknown image id {ann.get('image_id')}",
                              json_path)
        labels[ann["image_id"]][cat_index[ann["category_id"]]] = True

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

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return CocoDataset(root=json_path.resolve(), split=split, class_names=class_names,
                       records=records, kind="coco", extra_fingerprint={"json": json_path.name},
                       json_path=json_path, coco=coco, cat_index=cat_index, json_ids=json_ids)
