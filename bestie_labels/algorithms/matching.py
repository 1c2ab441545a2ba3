"""Quality of pseudo labels against GT instances (pure part of ``bestie-labels report``).

A pseudo instance is a true positive when its IoU with a not yet matched GT instance of the
same class is at least 0.5 (the count behind Figure 6 of the paper). Pseudo instances are
matched greedily in decreasing score order, each to the unmatched GT of its class with the
highest IoU.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..datasets.base import GtInstances

#: Columns of the per-image count array returned by :func:`match_pseudo_to_gt`.
NUM_PSEUDO, TP, NUM_GT = 0, 1, 2


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of masks.

    Args:
        a: ``(M, H, W) bool``; b: ``(N, H, W) bool``.

    Returns:
        ``(M, N) float64``; 0 where both masks are empty.
    """
    a2 = a.reshape(a.shape[0], -1).astype(np.float64)
    b2 = b.reshape(b.shape[0], -1).astype(np.float64)
    # Pixel counts are exact in float64; BLAS makes the M x N intersections one product.
    inter = a2 @ b2.T
    union = a2.sum(1)[:, None] + b2.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def matched_gt(pseudo: dict, gt: GtInstances, iou_thr: float = 0.5) -> np.ndarray:
    """Which GT instances a pseudo instance matches (the greedy matching described above).

    Args:
        pseudo: dict of :func:`bestie_labels.algorithms.knowledge_transfer.transfer_instances` (``instances (H, W)``,
            ``classes (M,)``, ``scores (M,)``).
        gt: the image's GT; crowd instances are never matched.
        iou_thr: a match needs IoU >= this.

    VOC void pixels are left out of the pseudo masks before computing IoU (GT masks never hold
    them), so void is neither a hit nor a miss. Ties in score keep the pseudo order.

    Returns:
        ``(N,) bool`` over all GT instances (crowd ones False).
    """
    p_cls = np.asarray(pseudo["classes"], np.int64).reshape(-1)
    keep = ~np.asarray(gt.crowd, bool).reshape(-1)
    matched = np.zeros(keep.size, bool)
    g_cls = np.asarray(gt.classes, np.int64).reshape(-1)[keep]
    if p_cls.size == 0 or g_cls.size == 0:
        return matched
    inst = np.asarray(pseudo["instances"]).astype(np.int64)
    inst = np.where(gt.void, 0, inst)
    m = p_cls.size
    # One-hot of the instance map: (M, H, W) masks of the pseudo instances.
    p_masks = inst[None] == np.arange(1, m + 1)[:, None, None]
    g_masks = np.asarray(gt.masks, bool)[keep]
    iou = mask_iou(p_masks, g_masks)
    iou[p_cls[:, None] != g_cls[None, :]] = -1.0  # other classes never match

    scores = np.asarray(pseudo.get("scores", np.ones(m)), np.float64).reshape(-1)
    hit = np.zeros(g_cls.size, bool)
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(hit, -1.0, iou[i])
        j = int(np.argmax(cand))
        if cand[j] >= iou_thr:
            hit[j] = True
    matched[keep] = hit
    return matched


def match_pseudo_to_gt(pseudo: dict, gt: GtInstances, num_classes: int, iou_thr: float = 0.5) -> np.ndarray:
    """Count pseudo instances, true positives and GT instances of one image, per class.

    Args:
        pseudo, gt, iou_thr: as :func:`matched_gt` (crowd instances are neither counted nor matched).
        num_classes: C.

    Returns:
        ``(C, 3) int64``: columns :data:`NUM_PSEUDO`, :data:`TP`, :data:`NUM_GT`.
    """
    counts = np.zeros((num_classes, 3), np.int64)
    keep = ~np.asarray(gt.crowd, bool).reshape(-1)
    g_cls = np.asarray(gt.classes, np.int64).reshape(-1)
    np.add.at(counts[:, NUM_PSEUDO], np.asarray(pseudo["classes"], np.int64).reshape(-1), 1)
    np.add.at(counts[:, NUM_GT], g_cls[keep], 1)
    # A true positive and its GT instance share the class.
    np.add.at(counts[:, TP], g_cls[matched_gt(pseudo, gt, iou_thr)], 1)
    return counts


def _ratio(num: int, den: int) -> float | None:
    """``100 num / den`` (percent, as every JSON the project writes), None when ``den`` is 0."""
    return None if den == 0 else 100.0 * num / den


def _or_dash(v) -> str:
    return "-" if v is None else str(v)


def _row(c: np.ndarray) -> dict:
    n_p, tp, n_g = (int(v) for v in c)
    return {"num_pseudo": n_p, "tp": tp, "num_gt": n_g,
            "precision": _ratio(tp, n_p), "recall": _ratio(tp, n_g)}


def summarise(counts: Iterable[np.ndarray], class_names: Sequence[str]) -> dict:
    """Totals over images.

    Args:
        counts: per image ``(C, 3)`` arrays of :func:`match_pseudo_to_gt` (or one ``(B, C, 3)``).
        class_names: C names.

    Returns:
        JSON-ready dict: ``num_images``, ``classes`` (name -> row) and ``total`` (row), each row
        ``num_pseudo``, ``tp``, ``num_gt``, ``precision = 100 tp / num_pseudo`` and
        ``recall = 100 tp / num_gt`` (percent of GT instances recovered; None when undefined).
    """
    c = len(class_names)
    arr = np.asarray(list(counts) if not isinstance(counts, np.ndarray) else counts, np.int64)
    arr = arr.reshape(-1, c, 3)
    total = arr.sum(0)
    return {"num_images": int(arr.shape[0]),
            "classes": {name: _row(total[k]) for k, name in enumerate(class_names)},
            "total": _row(total.sum(0))}


def summarise_without_gt(counts: Iterable[np.ndarray], class_names: Sequence[str]) -> dict:
    """Totals for a split without GT: pseudo-instance counts only; ``tp``, ``num_gt``,
    ``precision`` and ``recall`` are None (they need GT), and ``note`` says so."""
    s = summarise(counts, class_names)
    for row in (*s["classes"].values(), s["total"]):
        row.update(tp=None, num_gt=None, precision=None, recall=None)
    s["note"] = "precision and recall need GT instances; this split has none, so only the pseudo instances are counted"
    return s


def format_table(summary: dict) -> str:
    """The summary as an aligned text table, one row per class and a total row."""
    def pct(v):
        return "-" if v is None else f"{v:.1f}"

    rows = [(name, r) for name, r in summary["classes"].items()] + [("total", summary["total"])]
    width = max(5, *(len(n) for n, _ in rows))
    head = f"{'class':<{width}} {'pseudo':>7} {'TP':>7} {'GT':>7} {'prec%':>7} {'recall%':>8}"
    lines = [head, "-" * len(head)]
    for i, (name, r) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(head))
        lines.append(f"{name:<{width}} {r['num_pseudo']:>7} {_or_dash(r['tp']):>7} {_or_dash(r['num_gt']):>7} "
                     f"{pct(r['precision']):>7} {pct(r['recall']):>8}")
    lines.append(f"({summary['num_images']} images)")
    if summary.get("note"):
        lines.append(f"note: {summary['note']}")
    return "\n".join(lines)
