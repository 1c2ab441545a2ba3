"""The summary page of the label-stage report: one row per class, and plots of those rows.

Columns: GT instances, cues, pseudo instances, TP / FP / missed (IoU >= the report's threshold),
precision and recall (percent), the WSSS class IoU against the GT class masks, and, when the
``report.json`` given has a ``lost`` field (``{"total": {fate: n}, "per_class": {name: {fate:
n}}}``), one column per fate there (where GT instances are lost: no cue, merged, ...).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..palette import FP_COLOUR, MISSED_COLOUR, TP_COLOUR, hex_colour
from .plots import grouped_bars, stacked_bars


def _pct(num, den) -> float | None:
    return None if not den else round(100.0 * num / den, 1)


def _fmt(v) -> str:
    return "-" if v is None else str(v)


def class_counts(num_classes: int, extras: Sequence[dict]) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Sums over images: ``(C, 4) int64`` GT, TP, pseudo, cues per class; the WSSS IoU
    ``(C + 1,)`` percent (NaN: no pixels; None: no WSSS store or no GT); whether any image had GT."""
    per = np.zeros((num_classes, 4), np.int64)
    conf = np.zeros((3, num_classes + 1), np.int64)
    any_wsss = any_gt = False
    for e in extras:
        for k, v in e.get("per_class", {}).items():
            per[int(k)] += v
        if "wsss" in e:
            conf += np.asarray(e["wsss"], np.int64)
            any_wsss = True
        any_gt = any_gt or "wsss" in e or per[:, 0].any()
    iou = None
    if any_wsss:
        union = conf[1] + conf[2] - conf[0]
        iou = np.where(union > 0, 100.0 * conf[0] / np.maximum(union, 1), np.nan)
    return per, iou, bool(any_gt)


def _lost(report: dict | None) -> tuple[list[str], dict]:
    lost = (report or {}).get("lost")
    if not isinstance(lost, dict):
        return [], {}
    keys: list[str] = []
    for row in [lost.get("total", {}), *lost.get("per_class", {}).values()]:
        keys += [k for k in row if k not in keys]
    return keys, lost


def summarise_labels(class_names: Sequence[str], extras: Sequence[dict], report: dict | None = None,
                     iou_thr: float = 0.5) -> dict:
    """The summary page's context: ``tables``, ``plots`` (PNG bytes by name), ``notes``."""
    per, iou, with_gt = class_counts(len(class_names), extras)
    lost_keys, lost = _lost(report)
    head = ["class", "GT", "cues", "pseudo", "TP", "FP", "missed", "precision %", "recall %", "WSSS IoU %",
            *(f"lost: {k}" for k in lost_keys)]
    rows, series = [], {"TP": [], "FP": [], "missed": [], "precision": [], "recall": [], "WSSS IoU": []}
    names = [*class_names, "total"]
    for k, name in enumerate(names):
        g, tp, p, q = per.sum(0) if k == len(class_names) else per[k]
        ciou = None
        if iou is not None:
            valid = iou[~np.isnan(iou)]
            v = (valid.mean() if valid.size else np.nan) if k == len(class_names) else iou[k + 1]
            ciou = None if np.isnan(v) else round(float(v), 1)
        lrow = lost.get("total", {}) if k == len(class_names) else lost.get("per_class", {}).get(name, {})
        cells = [name, g if with_gt else None, q, p, tp if with_gt else None, p - tp if with_gt else None,
                 g - tp if with_gt else None, _pct(tp, p) if with_gt else None, _pct(tp, g) if with_gt else None,
                 ciou, *(lrow.get(key, 0) for key in lost_keys)]
        rows.append({"cells": [_fmt(c) for c in cells], "cls": "total" if k == len(class_names) else ""})
        if k < len(class_names):
            for s, v in zip(series, (tp, p - tp, g - tp, _pct(tp, p), _pct(tp, g), ciou)):
                series[s].append(v if with_gt or s == "WSSS IoU" else None)
    plots = {}
    if with_gt:
        plots["outcomes.png"] = stacked_bars(class_names, {s: series[s] for s in ("TP", "FP", "missed")},
                                             f"pseudo instances against GT (IoU >= {iou_thr:g})",
                                             colours={"TP": hex_colour(TP_COLOUR), "FP": hex_colour(FP_COLOUR),
                                                      "missed": hex_colour(MISSED_COLOUR)})
        q = {s: series[s] for s in ("precision", "recall")} | ({"WSSS IoU": series["WSSS IoU"]} if iou is not None else {})
        plots["quality.png"] = grouped_bars(class_names, q, "precision, recall and WSSS IoU per class")
    if lost_keys:
        plots["lost.png"] = stacked_bars(class_names, {key: [lost.get("per_class", {}).get(n, {}).get(key, 0)
                                                             for n in class_names] for key in lost_keys},
                                         "where GT instances are lost")
    notes = [f"a pseudo instance is a true positive at IoU >= {iou_thr:g} with an unmatched GT instance of its class; "
             "WSSS IoU: class masks against the GT class masks (total: mean over classes with pixels, "
             "background included)"]
    if not with_gt:
        notes.append("no image of this split has GT instances: only cues and pseudo instances are counted")
    if report and report.get("note"):
        notes.append(str(report["note"]))
    return {"tables": [{"title": "per class", "head": head, "rows": rows}], "plots": plots, "notes": notes}


def write_labels_report(dataset, pseudo, out: str | os.PathLike, wsss=None, cues=None, report: dict | None = None,
                        workers: int = 1, force: bool = False, iou_thr: float = 0.5, progress: bool = True,
                        title: str | None = None) -> dict:
    """Write the HTML report of the label stages to ``out`` (see :mod:`.labels` and :mod:`.site`).

    Args:
        dataset: the split the stores were made from.
        pseudo, wsss, cues: the stores (``wsss`` and ``cues`` may be None: their panels say so).
        report: the ``report.json`` dict (its ``lost`` field and note are shown), or None.
        workers: processes drawing images; force: replace files ``out`` holds that the report did not write.

    Returns:
        ``{"index", "images", "written"}`` of :func:`.site.write_site`.
    """
    from ...store.inputs import CUES, PSEUDO, WSSS, close_cached, open_input
    from .labels import LabelsRenderer
    from .site import write_site

    for path, stage, opt in ((pseudo, PSEUDO, "--pseudo"), (wsss, WSSS, "--wsss"), (cues, CUES, "--cues")):
        if path is not None:
            open_input(path, stage, dataset, opt, same_data=True).close()
    renderer = LabelsRenderer(dataset, pseudo, wsss, cues, iou_thr)
    title = title or f"bestie labels: {os.path.basename(os.fspath(pseudo))} on split {dataset.split}"
    try:
        return write_site(out, renderer, list(dataset.records), title,
                          lambda rows, extras: summarise_labels(dataset.class_names, extras, report, iou_thr),
                          workers=workers, force=force, progress=progress)
    finally:
        close_cached()
