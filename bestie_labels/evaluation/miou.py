"""Semantic-segmentation mIoU of class masks against GT class masks (the WSSS papers' number).

Masks use the project's convention: 0 background, ``k + 1`` class k, 255 ignore. GT pixels that
are 255 (VOC void) are left out. A predicted 255 (e.g. the lines a WSSS method cuts between
touching instances) counts as background: it is a claim that the pixel is no object. The IoU of
a class is ``TP / (TP + FP + FN)`` over the whole split; background is a class; classes with
neither GT nor predicted pixels are left out of the mean.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.constants import VOID


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C + 1, C + 1) int64`` confusion matrix (rows GT, columns prediction; index 0 background).

    Args:
        pred, gt: ``(H, W)`` uint8 class masks of the same shape.
        num_classes: C (foreground classes).
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and GT {gt.shape} differ in size")
    n = num_classes + 1
    keep = gt != VOID
    p = pred[keep].astype(np.int64)
    p[p == VOID] = 0
    if p.size and p.max() >= n:
        raise ValueError(f"prediction holds class index {int(p.max())} >= {n}")
    g = gt[keep].astype(np.int64)
    if g.size and g.max() >= n:
        raise ValueError(f"GT holds class index {int(g.max())} >= {n}")
    return np.bincount(g * n + p, minlength=n * n).reshape(n, n)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU ``(C + 1,) float64`` from a confusion matrix; NaN where a class has neither
    GT nor predicted pixels."""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    return np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)


def miou_summary(conf: np.ndarray, class_names: Sequence[str]) -> dict:
    """JSON-ready dict: ``per_class`` {name: IoU %} with ``background`` first, ``mIoU`` (%),
    ``pixels`` (counted pixels). NaN IoUs are None and not in the mean."""
    iou = iou_from_confusion(conf)
    names = ["background", *class_names]
    per = {n: (None if np.isnan(v) else round(100 * float(v), 2)) for n, v in zip(names, iou)}
    valid = iou[~np.isnan(iou)]
    return {"mIoU": round(100 * float(valid.mean()), 2) if valid.size else None, "per_class": per,
            "pixels": int(np.asarray(conf).sum())}


def format_miou(summary: dict) -> str:
    """The per-class IoUs and the mean as an aligned text table."""
    width = max(10, *(len(n) for n in summary["per_class"]))
    lines = [f"{'class':<{width}} {'IoU%':>7}", "-" * (width + 8)]
    for name, v in summary["per_class"].items():
        lines.append(f"{name:<{width}} {'-' if v is None else f'{v:.1f}':>7}")
    lines.append("-" * (width + 8))
    m = summary["mIoU"]
    lines.append(f"{'mIoU':<{width}} {'-' if m is None else f'{m:.1f}':>7}")
    return "\n".join(lines)
