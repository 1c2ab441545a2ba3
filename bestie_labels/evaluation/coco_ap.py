"""COCO mask AP (AP, AP50, AP75) through pycocotools' COCOeval, with in-memory GT."""

from __future__ import annotations

import contextlib
import io
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..core.rle import area as rle_area
from ..core.rle import bbox as rle_bbox
from ..core.rle import encode_masks

__all__ = ["coco_mask_ap", "encode_masks", "make_coco_eval"]


def _coco(images: list[dict], categories: list[dict], anns: list[dict]) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _annotations(image_ids, rles, classes, extra) -> list[dict]:
    anns = []
    for img, r, c, x in zip(image_ids, rles, classes, extra):
        for rle, k, v in zip(r, np.asarray(c).reshape(-1), x):
            area = float(rle_area(rle))
            bbox = [float(b) for b in rle_bbox(rle)]
            anns.append({"id": len(anns) + 1, "image_id": int(img), "category_id": int(k) + 1,
                         "segmentation": rle, "area": area, "bbox": bbox, **v})
    return anns


def make_coco_eval(image_ids: Sequence[int], sizes: Sequence[tuple[int, int]],
                   pred_rles: Sequence[Sequence[dict]], pred_classes: Sequence[np.ndarray],
                   pred_scores: Sequence[np.ndarray], gt_rles: Sequence[Sequence[dict]],
                   gt_classes: Sequence[np.ndarray], gt_crowd: Sequence[np.ndarray],
                   num_classes: int) -> COCOeval:
    """A ``COCOeval`` (segm) over in-memory GT and predictions, ready to ``evaluate()``.

    Args:
        image_ids: per image, its integer COCO id; sizes: per image, ``(H, W)``.
        pred_rles, pred_classes (0-based), pred_scores: per-image predictions.
        gt_rles, gt_classes (0-based), gt_crowd ``(G_i,) bool``: per-image GT; crowd regions
            are evaluated as COCO ``iscrowd`` (ignored, matching them is neither TP nor FP).
        num_classes: C (category ids 1..C).
    """
    images = [{"id": int(i), "height": int(h), "width": int(w)} for i, (h, w) in zip(image_ids, sizes)]
    categories = [{"id": k + 1, "name": str(k + 1)} for k in range(num_classes)]
    gt = _coco(images, categories, _annotations(
        image_ids, gt_rles, gt_classes,
        [[{"iscrowd": int(bool(c))} for c in np.asarray(cr).reshape(-1)] for cr in gt_crowd]))
    dt = _coco(images, categories, _annotations(
        image_ids, pred_rles, pred_classes,
        [[{"iscrowd": 0, "score": float(s)} for s in np.asarray(sc).reshape(-1)] for sc in pred_scores]))
    ev = COCOeval(gt, dt, iouType="segm")
    ev.params.imgIds = [int(i) for i in image_ids]
    return ev


def coco_mask_ap(image_ids: Sequence[int], sizes: Sequence[tuple[int, int]],
                 pred_rles: Sequence[Sequence[dict]], pred_classes: Sequence[np.ndarray],
                 pred_scores: Sequence[np.ndarray], gt_rles: Sequence[Sequence[dict]],
                 gt_classes: Sequence[np.ndarray], gt_crowd: Sequence[np.ndarray],
                 num_classes: int, verbose: bool = False) -> dict:
    """COCO segmentation AP over a set of images.

    Args: as :func:`make_coco_eval`, plus ``verbose``: let pycocotools print its progress and
    summary table.

    Returns:
        ``{"AP", "AP50", "AP75"}`` as fractions in [0, 1]; NaN when there is no GT at all
        (COCOeval reports -1).
    """
    ev = make_coco_eval(image_ids, sizes, pred_rles, pred_classes, pred_scores, gt_rles,
                        gt_classes, gt_crowd, num_classes)
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(s) if s >= 0 else float("nan") for s in ev.stats[:3]]
    return {"AP": stats[0], "AP50": stats[1], "AP75": stats[2]}
