"""The HTML report of a trained network on a split (``bestie-train evaluate --html``).

Per image: the photo; the predictions (one colour each, class name and score at the mask,
outlined green when a true positive at IoU 0.5, red when a false positive; matched greedily in
score order as :func:`bestie_labels.algorithms.matching.match_instances`); the GT with missed
instances marked. The summary: the per-class VOC AP table and COCO AP of the evaluation, TP /
FP / missed per class, and the training curves of the run when given.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

import numpy as np

from ...algorithms.matching import match_instances
from ...core.rle import decode
from ..drawing import instance_layer, paint_masks, zoom_factor, zoom_image, zoom_labels
from ..palette import FP_COLOUR, MATCHED_GT_COLOUR, MISSED_COLOUR, TP_COLOUR, hex_colour
from .labels import gt_layer
from .plots import grouped_bars, stacked_bars
from .site import Column, ImageView, Panel, record_key

COLUMNS = (Column("recall", "recall %", "low"), Column("fp", "FP", "high"), Column("missed", "missed", "high"),
           Column("preds", "predictions", "low"), Column("precision", "precision %", "low"),
           Column("gt", "GT", "low"), Column("top", "top score", "low"))
IOU = 0.5


def _pct(num: int, den: int) -> float | None:
    return None if den == 0 else round(100.0 * num / den, 1)


class PredictionsRenderer:
    """Draws one image's predictions against its GT (see the module docstring)."""

    columns = COLUMNS
    default_sort = {"key": "recall", "then": "fp"}
    layer_labels = {"pred": "predictions", "gt": "GT"}

    def __init__(self, dataset, results: Sequence[dict]):
        self.dataset = dataset
        self.class_names = list(dataset.class_names)
        by_image: dict[int, list] = {}
        for r in results:
            by_image.setdefault(int(r["image_id"]), []).append(r)
        self.results = by_image

    def key(self, rec) -> str:
        res = json.dumps(self.results.get(int(rec.coco_id), []), sort_keys=True, default=str).encode()
        return record_key(self.dataset, rec) + "|" + hashlib.sha256(res).hexdigest()

    def _predictions(self, rec):
        res = sorted(self.results.get(int(rec.coco_id), []), key=lambda r: -float(r["score"]))
        ids = self.dataset.category_map()
        classes = np.array([ids.class_of(r["category_id"]) for r in res], np.int64)
        scores = np.array([float(r["score"]) for r in res], np.float64)
        masks = decode([r["segmentation"] for r in res]) if res else np.zeros((0, rec.height, rec.width), bool)
        return masks.reshape(-1, rec.height, rec.width), classes, scores

    def render(self, rec) -> ImageView:
        photo = self.dataset.load_image(rec)
        h, w = photo.shape[:2]
        masks, classes, scores = self._predictions(rec)
        gt = self.dataset.load_gt(rec) if self.dataset.has_gt(rec) else None
        m = match_instances({"masks": masks, "classes": classes, "scores": scores}, gt, IOU) if gt is not None else None
        texts = [f"{self.class_names[c]} {s:.2f}" for c, s in zip(classes, scores)]
        tp = np.zeros(len(classes), bool) if m is None else m["gt"] >= 0
        outline = None if m is None else np.where(tp[:, None], TP_COLOUR, FP_COLOUR)
        k = zoom_factor(w)  # small images are drawn enlarged
        photo = zoom_image(photo, k)
        pred = instance_layer(zoom_labels(paint_masks(masks, scores, h, w), k), texts, outline, thickness=3)
        panels = [Panel("image", []),
                  Panel(f"predictions ({len(classes)})", [("pred", pred)],
                        [] if m is None else [{"name": f"TP (IoU >= {IOU:g})", "colour": hex_colour(TP_COLOUR),
                                               "note": str(int(tp.sum()))},
                                              {"name": "FP", "colour": hex_colour(FP_COLOUR),
                                               "note": str(int((~tp).sum()))}])]
        stats = {"preds": int(len(classes)), "top": round(float(scores.max()), 3) if len(scores) else None,
                 "gt": None, "fp": None, "missed": None, "recall": None, "precision": None}
        per = np.zeros((len(self.class_names), 3), np.int64)  # GT, TP, predictions per class
        np.add.at(per[:, 2], classes, 1)
        present = set(classes.tolist()) | set(np.flatnonzero(np.asarray(rec.labels).reshape(-1)).tolist())
        if gt is None:
            panels.append(Panel("GT", [], missing="no GT for this image"))
        else:
            g_cls = np.asarray(gt.classes, np.int64)[m["gt_counted"]]
            np.add.at(per[:, 0], g_cls, 1)
            np.add.at(per[:, 1], classes[tp], 1)
            present |= set(g_cls.tolist())
            n_gt, n_tp = len(g_cls), int(tp.sum())
            stats.update(gt=n_gt, fp=len(classes) - n_tp, missed=n_gt - n_tp, recall=_pct(n_tp, n_gt),
                         precision=_pct(n_tp, len(classes)))
            gt_map = zoom_labels(gt.instance_map(), k)
            panels.append(Panel("GT (missed: orange)", [("gt", gt_layer(gt, m["gt_matched"], self.class_names, gt_map))],
                                [{"name": "matched", "colour": hex_colour(MATCHED_GT_COLOUR),
                                  "note": str(int(m["gt_matched"].sum()))},
                                 {"name": "missed", "colour": hex_colour(MISSED_COLOUR),
                                  "note": str(n_gt - n_tp)}]))
        stats["c"] = sorted(int(k) for k in present)
        rows = [{"cells": [i + 1, self.class_names[c], f"{s:.3f}", "-" if m is None else ("TP" if tp[i] else "FP"),
                           f"{m['iou'][i]:.2f}" if m is not None and tp[i] else "-"],
                 "cls": "" if m is None else ("tp" if tp[i] else "fp")} for i, (c, s) in enumerate(zip(classes, scores))]
        tables = [{"title": "predictions", "head": ["#", "class", "score", "match", "IoU"], "rows": rows}]
        extra = {"per_class": {int(k): per[k].tolist() for k in np.flatnonzero(per.any(1))}}
        return ImageView(photo, panels, stats, tables, ("pred",), extra)


def summarise_predictions(class_names: Sequence[str], extras: Sequence[dict], metrics: dict,
                          curves_png: bytes | None = None) -> dict:
    """The summary page's context: per-class VOC AP and TP / FP / missed, COCO AP, plots."""
    per = np.zeros((len(class_names), 3), np.int64)
    for e in extras:
        for k, v in e.get("per_class", {}).items():
            per[int(k)] += v
    voc = metrics.get("voc", {})
    keys = ("AP25", "AP50", "AP70", "AP75")
    pc = voc.get("per_class", {})

    def f(v):
        return "-" if v is None else f"{v:.1f}"

    rows = []
    for k, name in enumerate(class_names):
        g, tp, p = (int(v) for v in per[k])
        rows.append([name, *(f(pc.get(name, {}).get(key)) for key in keys), g, p, tp, p - tp, g - tp])
    g, tp, p = (int(v) for v in per.sum(0))
    rows.append({"cells": ["mean / total", *(f(voc.get("m" + key)) for key in keys),
                           g, p, tp, p - tp, g - tp], "cls": "total"})
    coco = metrics.get("coco", {})
    plots = {"ap.png": grouped_bars(class_names, {key: [pc.get(n, {}).get(key) for n in class_names]
                                                   for key in ("AP50", "AP75")}, "VOC AP per class"),
             "outcomes.png": stacked_bars(class_names, {"TP": per[:, 1], "FP": per[:, 2] - per[:, 1],
                                                        "missed": per[:, 0] - per[:, 1]},
                                          f"predictions against GT (IoU >= {IOU:g})",
                                          colours={"TP": hex_colour(TP_COLOUR), "FP": hex_colour(FP_COLOUR),
                                                   "missed": hex_colour(MISSED_COLOUR)})}
    if curves_png:
        plots["curves.png"] = curves_png
    notes = ["COCO mask AP " + "  ".join(f"{k}={f(coco.get(k))}" for k in ("AP", "AP50", "AP75")) +
             f" over {metrics.get('num_images', '-')} images, {metrics.get('num_predictions', '-')} predictions",
             f"TP / FP / missed: predictions matched to GT at IoU >= {IOU:g} in score order (every prediction, "
             "any score)"]
    head = ["class", *keys, "GT", "predictions", "TP", "FP", "missed"]
    return {"tables": [{"title": "per class (VOC AP, %)", "head": head, "rows": rows}], "plots": plots,
            "notes": notes}


def write_predictions_report(dataset, results: Sequence[dict], metrics: dict, out: str | os.PathLike,
                             curves_png: bytes | None = None, workers: int = 1, force: bool = False,
                             title: str | None = None, progress: bool = True) -> dict:
    """Write the HTML report of ``results`` (COCO results: ``image_id``, ``category_id`` in the
    dataset's ids, RLE ``segmentation``, ``score``) on ``dataset`` to ``out``.

    ``metrics``: :func:`bestie_labels.evaluation.evaluate.evaluate_predictions` of them;
    ``curves_png``: the training curves (PNG bytes) or None.
    """
    from .site import write_site

    renderer = PredictionsRenderer(dataset, results)
    return write_site(out, renderer, list(dataset.records), title or f"bestie predictions on split {dataset.split}",
                      lambda rows, extras: summarise_predictions(dataset.class_names, extras, metrics, curves_png),
                      workers=workers, force=force, progress=progress)
