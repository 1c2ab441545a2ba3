"""A pseudo-label store or predictions as a COCO instances JSON.

Compressed RLE with ``counts`` as str, ``bbox`` from the mask, ``area``, ``iscrowd`` 0,
``images`` with ``file_name`` / ``height`` / ``width``, the dataset's own category and image ids
and ``categories`` entries: what pycocotools loads and detectron2 / MMDetection train on.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from ..core.fileio import write_json
from ..core.rle import bbox as rle_bbox
from ..core.rle import encode, instance_masks
from ..core.version import __version__
from ..datasets.base import Dataset
from ..store.checks import read_pseudo
from ..store.file import Store


def image_entry(dataset: Dataset, rec) -> dict:
    """COCO ``images`` entry of a :class:`~bestie_labels.datasets.base.Record` of ``dataset``
    (its COCO id and ``file_name`` as :meth:`~bestie_labels.datasets.base.Dataset.coco_file_name`)."""
    return {"id": int(rec.coco_id), "file_name": dataset.coco_file_name(rec),
            "height": int(rec.height), "width": int(rec.width)}


def masks_to_annotations(masks: np.ndarray, classes: np.ndarray, image_id: int,
                         scores: np.ndarray | None = None, first_id: int = 1,
                         with_score: bool = False, category_ids: Sequence[int] | None = None) -> list[dict]:
    """COCO annotations (or results) for one image.

    Args:
        masks: ``(N, H, W) bool``; empty masks are skipped.
        classes: ``(N,)`` 0-based classes.
        image_id: the image's COCO id.
        scores: ``(N,) float`` confidences (written as ``score`` when ``with_score``).
        first_id: annotation id of the first kept mask (ids count up from it).
        with_score: also write ``score`` (results / predictions format).
        category_ids: ``(C,)`` the category id of each class (the dataset's
            :meth:`~bestie_labels.datasets.base.Dataset.category_ids`); None: class + 1.

    Returns:
        One dict per non-empty mask: ``id``, ``image_id``, ``category_id``, ``segmentation``
        (RLE, counts str), ``area``, ``bbox`` ``[x, y, w, h]``, ``iscrowd`` 0 (and ``score``).
    """
    masks = np.asarray(masks, bool)
    if masks.shape[0] == 0:
        return []
    rles = encode(masks)
    # Pixel counts from the masks: pycocotools' area() overflows with 256 or more RLEs under numpy 2.
    areas = masks.reshape(masks.shape[0], -1).sum(1, dtype=np.int64)
    boxes = rle_bbox(rles)
    classes = np.asarray(classes, np.int64)
    cids = classes + 1 if category_ids is None else np.asarray(category_ids, np.int64)[classes]
    out = []
    for n, rle in enumerate(rles):
        if areas[n] == 0:
            continue
        ann = {"id": first_id + len(out), "image_id": int(image_id),
               "category_id": int(cids[n]), "segmentation": rle,
               "area": int(areas[n]), "bbox": [float(v) for v in boxes[n]], "iscrowd": 0}
        if with_score and scores is not None:
            ann["score"] = float(scores[n])
        out.append(ann)
    return out


def results_to_coco_instances(dataset: Dataset, results: Iterable[dict]) -> dict:
    """A COCO instances JSON dict from results / predictions.

    ``results`` yields dicts ``image_id`` (COCO id), ``masks (N, H, W) bool``, ``classes (N,)``
    (0-based) and optionally ``scores (N,)``; the scores are kept as ``score``.
    """
    anns: list[dict] = []
    image_ids = []
    cat_ids = dataset.category_ids()
    for r in results:
        image_ids.append(int(r["image_id"]))
        anns += masks_to_annotations(r["masks"], r["classes"], r["image_id"], r.get("scores"),
                                     first_id=len(anns) + 1, with_score=True, category_ids=cat_ids)
    wanted = set(image_ids)
    images = [image_entry(dataset, rec) for rec in dataset.records if rec.coco_id in wanted]
    return {"info": {"description": "bestie predictions", "version": __version__},
            "images": images, "annotations": anns, "categories": dataset.coco_categories()}


def _progress(it, total, desc):
    return tqdm(it, total=total, desc=desc, unit="img", disable=None)


def coco_instances(dataset: Dataset, store: Store) -> dict:
    """The COCO instances JSON dict of a pseudo store (images in split order), in the dataset's
    own category ids, image ids and file names."""
    anns: list[dict] = []
    cat_ids = dataset.category_ids()
    for rec in _progress(dataset.records, len(dataset), "export coco"):
        d = read_pseudo(store, rec, dataset.num_classes)
        masks = instance_masks(d.instances, len(d.classes))
        anns += masks_to_annotations(masks, d.classes, rec.coco_id, d.scores, first_id=len(anns) + 1,
                                     category_ids=cat_ids)
    return {"info": {"description": "bestie pseudo instances", "version": __version__},
            "images": [image_entry(dataset, r) for r in dataset.records], "annotations": anns,
            "categories": dataset.coco_categories()}


def export_coco(dataset: Dataset, store: Store, out: str | os.PathLike) -> dict:
    """Write the COCO instances JSON of ``store`` to ``out`` (atomic). Returns counts."""
    js = coco_instances(dataset, store)
    write_json(out, js)
    return {"images": len(js["images"]), "instances": len(js["annotations"])}
