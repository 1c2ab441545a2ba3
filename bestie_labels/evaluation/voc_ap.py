"""PASCAL VOC instance-segmentation AP (the definition of chainercv's
``eval_instance_segmentation_voc``), vectorised over predictions and IoU thresholds.

Per class, the predictions of all images are ranked by score (descending; ties keep their
order of appearance: image order, then order within the image, so that the result does not
depend on a sort algorithm; chainercv's reversed ``argsort`` may order exact ties otherwise). In each image a prediction is
assigned to the GT of its class with the highest mask IoU (the first such GT on ties); it is a
true positive if that IoU reaches the threshold and no higher-ranked prediction of the same
image already took that GT, otherwise a false positive (it does not fall back to another GT).
AP is the all-point interpolated area under the precision/recall curve (VOC2010+, not the
2007 11-point rule). A class without GT has AP NaN and is left out of the mean; a class with
GT but no prediction has AP 0.

Masks are COCO RLEs (dicts with ``size`` [h, w] and compressed ``counts``); IoUs come from
``pycocotools.mask.iou``, one call per image, so no dense mask is ever decoded.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.rle import iou as rle_iou

VOC_IOU_THRESHOLDS = (0.25, 0.5, 0.7, 0.75)


def match_image(pred_rles: Sequence[dict], pred_classes: np.ndarray, gt_rles: Sequence[dict],
                gt_classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best same-class GT of each prediction of one image.

    Args:
        pred_rles: P compressed RLEs; pred_classes ``(P,) int``.
        gt_rles: G compressed RLEs of the same size; gt_classes ``(G,) int``.

    Returns:
        ``(best_iou (P,) float64, best_gt (P,) int64)``: the highest IoU with a GT of the same
        class and that GT's index (the first on ties); ``0.0`` and ``-1`` when the image has no
        GT of the prediction's class.
    """
    p, g = len(pred_rles), len(gt_rles)
    best_iou = np.zeros(p, np.float64)
    best_gt = np.full(p, -1, np.int64)
    if p == 0 or g == 0:
        return best_iou, best_gt
    iou = rle_iou(pred_rles, gt_rles)
    same = np.asarray(pred_classes)[:, None] == np.asarray(gt_classes)[None, :]
    iou = np.where(same, iou, -1.0)
    best_gt = iou.argmax(axis=1)
    best_iou = iou[np.arange(p), best_gt]
    has = same.any(axis=1)
    best_gt = np.where(has, best_gt, -1).astype(np.int64)
    best_iou = np.where(has, best_iou, 0.0)
    return best_iou, best_gt


def voc_ap_from_matches(best_iou: np.ndarray, best_gt: np.ndarray, image_index: np.ndarray,
                        classes: np.ndarray, scores: np.ndarray, gt_offsets: np.ndarray,
                        num_pos: np.ndarray, iou_thresholds: Sequence[float] = VOC_IOU_THRESHOLDS
                        ) -> np.ndarray:
    """AP per threshold and class from the per-prediction best matches.

    Args:
        best_iou, best_gt: ``(P,)`` from :func:`match_image`, concatenated over images in image
            order (predictions of one image contiguous, in their original order).
        image_index: ``(P,) int`` image of each prediction.
        classes: ``(P,) int`` 0-based class; scores ``(P,) float``.
        gt_offsets: ``(num_images,) int64`` index of each image's first GT in a global GT
            numbering (so that ``gt_offsets[image] + best_gt`` is unique across images).
        num_pos: ``(C,) int`` number of GT instances per class.
        iou_thresholds: T thresholds in (0, 1].

    Returns:
        ``(T, C) float64`` AP in [0, 1]; NaN for classes with no GT.
    """
    thr = np.asarray(iou_thresholds, np.float64)
    num_pos = np.asarray(num_pos, np.int64)
    t, c = len(thr), len(num_pos)
    ap = np.zeros((t, c), np.float64)
    ap[:, num_pos == 0] = np.nan
    n = len(scores)
    if n == 0:
        return ap
    classes = np.asarray(classes, np.int64)
    # Rank by class, then score descending; lexsort is stable, so ties keep image order and the
    # order within each image.
    order = np.lexsort((-np.asarray(scores, np.float64), classes))
    cls = classes[order]
    gt_key = np.where(best_gt[order] >= 0, gt_offsets[image_index[order]] + best_gt[order], -1)
    valid = (best_iou[order][None, :] >= thr[:, None]) & (gt_key >= 0)[None, :]  # (T, P)
    # A prediction is a TP when it is the first valid one (in rank order) to claim its GT; the
    # GT numbering is per image and per class, so one `unique` over (threshold, GT) does it all.
    num_gt_total = int(gt_key.max()) + 1 if (gt_key >= 0).any() else 1
    keys = np.where(valid, gt_key[None, :] + np.arange(t)[:, None] * num_gt_total, -1).ravel()
    tp = np.zeros(t * n, bool)
    hit = np.flatnonzero(keys >= 0)
    if len(hit):
        _, first = np.unique(keys[hit], return_index=True)
        tp[hit[first]] = True
    tp = tp.reshape(t, n)

    # Segments of equal class along the ranked list.
    starts = np.flatnonzero(np.r_[True, cls[1:] != cls[:-1]])
    seg = np.cumsum(np.r_[True, cls[1:] != cls[:-1]]) - 1  # (P,) segment of each prediction
    rank = np.arange(n) - starts[seg] + 1  # 1-based position within its class
    ctp = np.cumsum(tp, axis=1)
    ctp = ctp - np.where(starts > 0, ctp[:, np.maximum(starts - 1, 0)], 0)[:, seg]
    prec = ctp / rank[None, :]
    # Precision envelope: running max from the right within each class. Lift segment k of the
    # reversed list by 2k so that a running max never crosses into the next segment.
    lift = 2.0 * (seg.max() - seg)
    env = np.maximum.accumulate((prec + lift[None, :])[:, ::-1], axis=1)[:, ::-1] - lift[None, :]
    # Recall rises by 1/num_pos at each TP; AP = sum over TPs of envelope / num_pos.
    seg_cls = cls[starts]
    area = np.add.reduceat(np.where(tp, env, 0.0), starts, axis=1)  # (T, segments)
    with np.errstate(divide="ignore", invalid="ignore"):
        seg_ap = area / num_pos[seg_cls][None, :]
    has_gt = num_pos[seg_cls] > 0
    ap[:, seg_cls[has_gt]] = seg_ap[:, has_gt]
    return ap


def voc_instance_ap(pred_rles: Sequence[Sequence[dict]], pred_classes: Sequence[np.ndarray],
                    pred_scores: Sequence[np.ndarray], gt_rles: Sequence[Sequence[dict]],
                    gt_classes: Sequence[np.ndarray], num_classes: int,
                    iou_thresholds: Sequence[float] = VOC_IOU_THRESHOLDS) -> dict:
    """VOC instance-segmentation AP over a set of images.

    Args:
        pred_rles: per image, a list of P_i compressed RLEs.
        pred_classes: per image, ``(P_i,) int`` 0-based classes.
        pred_scores: per image, ``(P_i,) float`` scores.
        gt_rles: per image, a list of G_i compressed RLEs (crowd regions already removed).
        gt_classes: per image, ``(G_i,) int`` 0-based classes.
        num_classes: C.
        iou_thresholds: T thresholds in (0, 1].

    Returns:
        dict with ``ap`` ``(T, C) float64`` in [0, 1] (NaN for classes without GT), ``map``
        ``(T,) float64`` (mean over classes with GT; NaN if none has GT), ``num_pos`` ``(C,)
        int64``.
    """
    n_img = len(pred_rles)
    if not (len(pred_classes) == len(pred_scores) == len(gt_rles) == len(gt_classes) == n_img):
        raise ValueError("all per-image sequences must have the same length")
    thr = np.asarray(iou_thresholds, np.float64)
    if len(thr) == 0 or not np.all((thr > 0) & (thr <= 1)):
        raise ValueError("IoU thresholds must lie in (0, 1]")
    ious, gts, imgs, clss, scs = [], [], [], [], []
    gt_offsets = np.zeros(n_img, np.int64)
    num_pos = np.zeros(num_classes, np.int64)
    total_gt = 0
    for i in range(n_img):
        pc = np.asarray(pred_classes[i], np.int64).reshape(-1)
        gc = np.asarray(gt_classes[i], np.int64).reshape(-1)
        ps = np.asarray(pred_scores[i], np.float64).reshape(-1)
        if not (len(pred_rles[i]) == len(pc) == len(ps)) or len(gt_rles[i]) != len(gc):
            raise ValueError(f"image {i}: masks, classes and scores differ in length")
        gt_offsets[i] = total_gt
        total_gt += len(gc)
        num_pos += np.bincount(gc, minlength=num_classes)[:num_classes]
        if len(pc) == 0:
            continue
        b_iou, b_gt = match_image(pred_rles[i], pc, gt_rles[i], gc)
        ious.append(b_iou)
        gts.append(b_gt)
        imgs.append(np.full(len(pc), i, np.int64))
        clss.append(pc)
        scs.append(ps)
    if ious:
        cat = np.concatenate
        ap = voc_ap_from_matches(cat(ious), cat(gts), cat(imgs), cat(clss), cat(scs), gt_offsets,
                                 num_pos, thr)
    else:
        ap = voc_ap_from_matches(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                 np.zeros(0, np.int64), np.zeros(0), gt_offsets, num_pos, thr)
    with np.errstate(invalid="ignore"):
        has = num_pos > 0
        mean = ap[:, has].mean(axis=1) if has.any() else np.full(len(thr), np.nan)
    return {"ap": ap, "map": mean, "num_pos": num_pos}
