"""The HTML report of the label stages: cues, WSSS mask, pseudo instances and GT of every image.

Per image (from ``cues.h5``, ``wsss.h5``, ``pseudo.h5`` and the dataset's GT, matched as
``report`` does, :func:`bestie_labels.algorithms.matching.match_instances`):

- *image + cues*: a dot per cue in its class colour, the class name beside it;
- *WSSS class mask*: classes in their colours, with a legend;
- *pseudo instances*: one colour each, class name at the mask, outlined green when a true
  positive, red when a false positive;
- *GT*: the GT instances, the ones no pseudo instance matched outlined orange and tagged "missed".

The gallery sorts and filters by recall, false positives, missed instances, cue count, class and
image id; the worst images (lowest recall, then most false positives) come first.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np

from ...algorithms.matching import match_instances
from ...store.checks import read_cues, read_pseudo, read_wsss
from ...store.inputs import CUES, PSEUDO, WSSS, cached_store
from ..drawing import (class_mask_layer, cue_layer, instance_layer, zoom_factor, zoom_image, zoom_labels,
                       zoom_points)
from ..palette import FP_COLOUR, MATCHED_GT_COLOUR, MISSED_COLOUR, TP_COLOUR, class_colours, hex_colour, legend_entries
from .site import Column, ImageView, Panel, record_key

COLUMNS = (Column("recall", "recall %", "low"), Column("fp", "FP", "high"), Column("missed", "missed", "high"),
           Column("cues", "cues", "low"), Column("precision", "precision %", "low"),
           Column("pseudo", "pseudo", "low"), Column("gt", "GT", "low"))
LAYERS = {"cues": "cues", "wsss": "WSSS mask", "pseudo": "pseudo instances", "gt": "GT"}


def _pct(num: int, den: int) -> float | None:
    return None if den == 0 else round(100.0 * num / den, 1)


def _store_key(path: str | None, stage: str, image_id: str) -> str:
    if path is None:
        return "-"
    h = hashlib.sha256()
    for name, e in sorted(cached_store(path, stage).encoded(image_id).items()):
        h.update(f"{name}{e.shape}{np.dtype(e.dtype).str}{e.planes}".encode())
        h.update(e.data)
    return h.hexdigest()


def gt_layer(gt, matched: np.ndarray | None, class_names: Sequence[str], inst: np.ndarray | None = None) -> np.ndarray:
    """The GT instances as a layer: class names, matched ones outlined white, missed ones orange
    and tagged ``missed``. ``matched (N,) bool`` over ``gt.masks`` or None (no pseudo store);
    ``inst``: ``gt.instance_map()`` when already made."""
    inst = gt.instance_map() if inst is None else inst
    names = [class_names[int(c)] for c in gt.classes]
    if matched is None:
        return instance_layer(inst, names)
    texts = [n if m else f"{n} missed" for n, m in zip(names, matched)]
    outline = np.where(np.asarray(matched)[:, None], MATCHED_GT_COLOUR, MISSED_COLOUR)
    return instance_layer(inst, texts, outline, alpha=0.45, thickness=3)


class LabelsRenderer:
    """Draws an image of the label stages (see the module docstring); picklable (stores are
    opened per process through :func:`~bestie_labels.store.inputs.cached_store`)."""

    columns = COLUMNS
    default_sort = {"key": "recall", "then": "fp"}
    layer_labels = LAYERS

    def __init__(self, dataset, pseudo, wsss=None, cues=None, iou_thr: float = 0.5):
        self.dataset = dataset
        self.class_names = list(dataset.class_names)
        self.pseudo, self.wsss, self.cues = (None if p is None else os.fspath(p) for p in (pseudo, wsss, cues))
        self.iou_thr = iou_thr

    def key(self, rec) -> str:
        return "|".join([record_key(self.dataset, rec), str(self.iou_thr),
                         *(_store_key(p, s, rec.image_id) for p, s in ((self.pseudo, PSEUDO), (self.wsss, WSSS),
                                                                        (self.cues, CUES)))])

    def _read(self, rec):
        c = self.dataset.num_classes
        # the matching reads the pseudo record as its mapping of arrays (instances, classes, ...)
        p = vars(read_pseudo(cached_store(self.pseudo, PSEUDO), rec, c))
        w = read_wsss(cached_store(self.wsss, WSSS), rec, c).mask if self.wsss else None
        q = read_cues(cached_store(self.cues, CUES), rec, c).points if self.cues else None
        gt = self.dataset.load_gt(rec) if self.dataset.has_gt(rec) else None
        return p, w, q, gt

    def render(self, rec) -> ImageView:
        photo = self.dataset.load_image(rec)
        pseudo, wsss, cues, gt = self._read(rec)
        names = self.class_names
        m = match_instances(pseudo, gt, self.iou_thr) if gt is not None else None
        gt_map = gt.instance_map() if gt is not None else None
        p_cls = np.asarray(pseudo["classes"], np.int64).reshape(-1)
        stats, extra = self._stats(rec, p_cls, cues, gt, m, wsss, gt_map)
        tables = self._tables(pseudo, p_cls, gt, m)
        # small images are drawn enlarged (the statistics above are of the image as it is)
        k = zoom_factor(photo.shape[1])
        photo, cues = zoom_image(photo, k), zoom_points(cues, k)
        inst = zoom_labels(pseudo["instances"], k)
        wsss = None if wsss is None else zoom_labels(wsss, k)
        gt_map = None if gt_map is None else zoom_labels(gt_map, k)
        h, w = photo.shape[:2]
        panels = [self._cue_panel(h, w, cues), self._wsss_panel(wsss), self._pseudo_panel(inst, p_cls, m)]
        if gt is None:
            panels.append(Panel("GT", [], missing="no GT for this image"))
        else:
            panels.append(Panel("GT (missed: orange)", [("gt", gt_layer(gt, m["gt_matched"], names, gt_map))],
                                legend=[{"name": "matched", "colour": hex_colour(MATCHED_GT_COLOUR),
                                         "note": str(int(m["gt_matched"].sum()))},
                                        {"name": "missed", "colour": hex_colour(MISSED_COLOUR),
                                         "note": str(int((m["gt_counted"] & ~m["gt_matched"]).sum()))}]))
        return ImageView(photo, panels, stats, tables, ("pseudo",), extra)

    def _cue_panel(self, h, w, cues) -> Panel:
        if cues is None:
            return Panel("image + cues", [], missing="no cues store")
        cls = cues[:, 2].astype(np.int64)
        cols = class_colours(len(self.class_names))
        legend = [{"name": self.class_names[k], "colour": hex_colour(cols[k]), "note": f"{int((cls == k).sum())} cues"}
                  for k in np.unique(cls)]
        return Panel(f"image + cues ({len(cues)})", [("cues", cue_layer(h, w, cues, self.class_names))], legend)

    def _wsss_panel(self, wsss) -> Panel:
        if wsss is None:
            return Panel("WSSS class mask", [], missing="no WSSS store")
        return Panel("WSSS class mask", [("wsss", class_mask_layer(wsss))], legend_entries(wsss, self.class_names))

    def _pseudo_panel(self, inst, p_cls, m) -> Panel:
        texts = [self.class_names[k] for k in p_cls]
        if m is None:
            return Panel(f"pseudo instances ({len(p_cls)})", [("pseudo", instance_layer(inst, texts))])
        tp = m["gt"] >= 0
        outline = np.where(tp[:, None], TP_COLOUR, FP_COLOUR)
        lay = instance_layer(inst, texts, outline, thickness=3)
        legend = [{"name": "TP", "colour": hex_colour(TP_COLOUR), "note": str(int(tp.sum()))},
                  {"name": "FP", "colour": hex_colour(FP_COLOUR), "note": str(int((~tp).sum()))}]
        return Panel(f"pseudo instances ({len(p_cls)})", [("pseudo", lay)], legend)

    def _stats(self, rec, p_cls, cues, gt, m, wsss, gt_map) -> tuple[dict, dict]:
        c = len(self.class_names)
        present = set(np.flatnonzero(np.asarray(rec.labels).reshape(-1)).tolist()) | set(p_cls.tolist())
        per = np.zeros((c, 4), np.int64)  # GT, TP, pseudo, cues per class
        np.add.at(per[:, 2], p_cls, 1)
        if cues is not None:
            np.add.at(per[:, 3], cues[:, 2].astype(np.int64), 1)
        stats = {"pseudo": int(len(p_cls)), "cues": None if cues is None else int(len(cues)),
                 "gt": None, "fp": None, "missed": None, "recall": None, "precision": None}
        extra = {}
        if gt is not None:
            g_cls = np.asarray(gt.classes, np.int64)[m["gt_counted"]]
            present |= set(g_cls.tolist())
            np.add.at(per[:, 0], g_cls, 1)
            tp_cls = p_cls[m["gt"] >= 0]
            np.add.at(per[:, 1], tp_cls, 1)
            n_gt, tp = int(len(g_cls)), int(len(tp_cls))
            stats.update(gt=n_gt, fp=int(len(p_cls)) - tp, missed=n_gt - tp, recall=_pct(tp, n_gt),
                         precision=_pct(tp, len(p_cls)))
            if wsss is not None:
                from ...evaluation.miou import confusion

                # gt.semantic() from the instance map made for the GT layer (the same rule: crowd
                # left out, later instances over earlier ones, void 255)
                sem = np.concatenate([[0], np.asarray(gt.classes, np.int64) + 1]).astype(np.uint8)[gt_map]
                sem[gt.void] = 255
                conf = confusion(wsss, sem, c)
                extra["wsss"] = [np.diag(conf).tolist(), conf.sum(1).tolist(), conf.sum(0).tolist()]
        stats["c"] = sorted(int(k) for k in present)
        extra["per_class"] = {int(k): per[k].tolist() for k in np.flatnonzero(per.any(1))}
        return stats, extra

    def _tables(self, pseudo, p_cls, gt, m) -> list[dict]:
        scores = np.asarray(pseudo["scores"], np.float64).reshape(-1)
        rows = []
        for i, k in enumerate(p_cls):
            fate = "-" if m is None else ("TP" if m["gt"][i] >= 0 else "FP")
            iou = "-" if m is None or m["gt"][i] < 0 else f"{m['iou'][i]:.2f}"
            rows.append({"cells": [i + 1, self.class_names[k], f"{scores[i]:.2f}", fate, iou],
                         "cls": fate.lower() if fate != "-" else ""})
        tables = [{"title": "pseudo instances", "head": ["#", "class", "score", "match", "IoU"], "rows": rows}]
        if gt is not None:
            g = [{"cells": [n + 1, self.class_names[int(gt.classes[n])],
                            "crowd" if not m["gt_counted"][n] else ("matched" if m["gt_matched"][n] else "missed")],
                  "cls": "missed" if m["gt_counted"][n] and not m["gt_matched"][n] else ""}
                 for n in range(len(gt.classes))]
            tables.append({"title": "GT instances", "head": ["#", "class", "outcome"], "rows": g})
        return tables
