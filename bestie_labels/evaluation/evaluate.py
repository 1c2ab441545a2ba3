"""Evaluate a COCO results file of instance masks against a dataset split's GT.

Reports the VOC instance mAP at IoU 0.25 / 0.5 / 0.7 / 0.75 (:mod:`.voc_ap`) and the COCO
mask AP / AP50 / AP75 (:mod:`.coco_ap`), in percent as in the paper's tables.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from ..core.errors import BestieError
from .coco_ap import coco_mask_ap, encode_masks
from .predictions import read_predictions
from .voc_ap import VOC_IOU_THRESHOLDS, voc_instance_ap

VOC_KEYS = tuple(f"mAP{round(t * 100)}" for t in VOC_IOU_THRESHOLDS)  # mAP25 mAP50 mAP70 mAP75


def _pct(x: float) -> float | None:
    """Fraction -> percent rounded to 4 decimals; NaN -> None (JSON null)."""
    x = float(x)
    return None if math.isnan(x) else round(100.0 * x, 4)


def evaluate_predictions(dataset, predictions, verbose: bool = False, progress: bool = True) -> dict:
    """VOC and COCO instance-segmentation metrics of predictions on a dataset split.

    Args:
        dataset: a :class:`~bestie_labels.datasets.base.Dataset` with GT (``load_gt``).
        predictions: a COCO results JSON path, or the list itself (see :mod:`.predictions`).
        verbose: let pycocotools print its own tables.
        progress: show a tqdm bar while reading GT.

    Returns:
        ``{"voc": {"mAP25", "mAP50", "mAP70", "mAP75", "per_class": {name: {"AP25", "AP50",
        "AP70", "AP75"}}}, "coco": {"AP", "AP50", "AP75"}, "num_images", "num_predictions"}``,
        figures in percent. Classes without GT are left out of ``per_class`` and of the VOC
        means; a figure that is undefined (no GT at all) is ``None``.

    Raises:
        BestieError: a malformed results file (see :func:`read_predictions`) or GT.
    """
    preds = read_predictions(predictions, dataset)
    ids, sizes = [], []
    p_rles, p_cls, p_sc = [], [], []
    g_rles, g_cls, g_crowd = [], [], []
    for rec in tqdm(dataset.records, desc="evaluate", unit="img", disable=not progress, leave=False):
        gt = dataset.load_gt(rec)
        if gt.masks.shape[1:] != (rec.height, rec.width):
            raise BestieError(f"GT masks are {gt.masks.shape[2]}x{gt.masks.shape[1]} but the image is "
                              f"{rec.width}x{rec.height}", rec.file_name)
        ids.append(rec.coco_id)
        sizes.append((rec.height, rec.width))
        p = preds[rec.image_id]
        p_rles.append(p.rles)
        p_cls.append(p.classes)
        p_sc.append(p.scores)
        g_rles.append(encode_masks(gt.masks))
        g_cls.append(np.asarray(gt.classes, np.int64))
        g_crowd.append(np.asarray(gt.crowd, bool))

    # VOC has no crowd regions; COCO crowd GTs are dropped from the VOC metric.
    keep = [~c for c in g_crowd]
    voc = voc_instance_ap(p_rles, p_cls, p_sc,
                          [[r for r, k in zip(rl, kp) if k] for rl, kp in zip(g_rles, keep)],
                          [c[k] for c, k in zip(g_cls, keep)], dataset.num_classes)
    coco = coco_mask_ap(ids, sizes, p_rles, p_cls, p_sc, g_rles, g_cls, g_crowd,
                        dataset.num_classes, verbose=verbose)

    per_class = {}
    for k, name in enumerate(dataset.class_names):
        if voc["num_pos"][k] > 0:
            per_class[name] = {f"AP{key[3:]}": _pct(voc["ap"][t, k]) for t, key in enumerate(VOC_KEYS)}
    return {
        "voc": {**{key: _pct(voc["map"][t]) for t, key in enumerate(VOC_KEYS)}, "per_class": per_class},
        "coco": {k: _pct(v) for k, v in coco.items()},
        "num_images": len(dataset.records),
        "num_predictions": int(sum(len(p) for p in preds.values())),
    }


def format_metrics(metrics: dict) -> str:
    """A readable plain-text table of :func:`evaluate_predictions`' result."""

    def f(v):
        return "    -" if v is None else f"{v:5.1f}"

    keys = [k[3:] for k in VOC_KEYS]
    lines = [f"{metrics['num_images']} images, {metrics['num_predictions']} predictions", "",
             f"{'VOC AP (%)':<16}" + "".join(f"{'@' + k:>8}" for k in keys)]
    for name, row in metrics["voc"]["per_class"].items():
        lines.append(f"{name:<16}" + "".join(f"{f(row['AP' + k]):>8}" for k in keys))
    lines.append(f"{'mean':<16}" + "".join(f"{f(metrics['voc']['mAP' + k]):>8}" for k in keys))
    c = metrics["coco"]
    lines += ["", f"COCO mask AP {f(c['AP']).strip()}  AP50 {f(c['AP50']).strip()}  AP75 {f(c['AP75']).strip()}"]
    return "\n".join(lines)
