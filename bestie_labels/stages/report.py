"""The ``report`` stage: pseudo-label quality against the GT, the WSSS mIoU, overlay images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ..datasets.base import Dataset
from ..core.errors import BestieError
from ..store.file import Store
from ..store.checks import read_cues, read_pseudo, read_wsss
from ..store.inputs import CUES, PSEUDO, WSSS, open_input


def _find_upstream(pseudo: Store, name: str, stage: str) -> Path | None:
    """The store next to ``pseudo`` whose bytes are the ``name`` input the pseudo store records."""
    want = pseudo.inputs.get(name)
    if not want:
        return None
    for p in sorted(pseudo.path.parent.glob("*.h5")):
        try:
            with Store(p) as s:
                if s.stage == stage and s.fingerprint == want:
                    return p
        except BestieError:
            continue
    return None


def overlay_sample(image_ids: Sequence[str], n: int) -> list[str]:
    """``n`` ids spread evenly over the split (first and last included), in split order."""
    if n <= 0 or not image_ids:
        return []
    idx = np.unique(np.linspace(0, len(image_ids) - 1, min(n, len(image_ids))).round().astype(int))
    return [image_ids[i] for i in idx]


def _counts(dataset: Dataset, pseudo: Store, iou_thr: float, records: list, has_gt: bool,
            fate_stores: tuple | None = None) -> tuple[list[np.ndarray], list | None]:
    """Per image of ``records`` the ``(C, 3) int64`` counts (see :mod:`bestie_labels.algorithms.matching`);
    without GT (``has_gt`` False) only the pseudo instances are counted. With ``fate_stores``
    (open cues and WSSS stores) also per image ``(fates (N,), GT classes (N,), number of cues,
    GT instances holding a cue of their class)``
    (fates of :func:`bestie_labels.algorithms.instance_fates.instance_fates`), else None."""
    from ..algorithms.instance_fates import cue_hits, instance_fates
    from ..algorithms.matching import NUM_PSEUDO, match_pseudo_to_gt

    counts, fates = [], ([] if fate_stores is not None and has_gt else None)
    conn = int(pseudo.options.get("connectivity", 8))
    for rec in tqdm(records, desc="report", unit="img", disable=None):
        d = read_pseudo(pseudo, rec, dataset.num_classes)
        if not has_gt:
            c = np.zeros((dataset.num_classes, 3), np.int64)
            np.add.at(c[:, NUM_PSEUDO], d.classes.astype(np.int64), 1)
            counts.append(c)
            continue
        gt = dataset.load_gt(rec)
        if d.instances.shape != gt.void.shape:
            raise BestieError(f"image {rec.image_id}: pseudo instances are {d.instances.shape[1]}x"
                              f"{d.instances.shape[0]} but the GT is {gt.void.shape[1]}x{gt.void.shape[0]}",
                              pseudo.path)
        counts.append(match_pseudo_to_gt(vars(d), gt, dataset.num_classes, iou_thr=iou_thr))  # by field name
        if fates is not None:
            cues, wsss = fate_stores
            pts = read_cues(cues, rec, dataset.num_classes).points
            f = instance_fates(gt, pts, read_wsss(wsss, rec, dataset.num_classes).mask, vars(d), iou_thr=iou_thr,
                               connectivity=conn)
            fates.append((f, gt.classes, len(pts), int(cue_hits(gt, pts).sum())))
    return counts, fates


def _recorded(pseudo: Store, given, name: str, stage: str) -> Path | None:
    """The ``name`` store the pseudo store was made from: ``given`` when its fingerprint is the one
    the pseudo store recorded, else the one found next to the pseudo store (or None)."""
    if given is not None:
        try:
            with Store(given) as s:
                if s.stage == stage and s.fingerprint == pseudo.inputs.get(name):
                    return Path(given)
        except BestieError:
            pass
    return _find_upstream(pseudo, name, stage)


def _fate_paths(pseudo: Store, wsss_path, cues_path) -> tuple | None:
    """The cues and WSSS stores the pseudo store was made from (``--cues`` / ``--wsss`` when they are
    those, else the ones next to it): the fates are only meaningful against them. None when either
    is not at hand (a ``--from-gt`` pseudo store has no cues)."""
    cues_path = _recorded(pseudo, cues_path, "cues", CUES)
    wsss_path = _recorded(pseudo, wsss_path, "wsss", WSSS)
    return None if cues_path is None or wsss_path is None else (cues_path, wsss_path)


def _overlays(dataset: Dataset, pseudo: Store, overlays_dir, n: int, wsss_path, cues_path) -> list[str]:
    """Write ``overlays_dir/<id>.png`` for ``n`` images; returns their paths."""
    from ..viz.drawing import overlay_panels, write_rgb_png

    wsss_path = wsss_path if wsss_path is not None else _find_upstream(pseudo, "wsss", WSSS)
    cues_path = cues_path if cues_path is not None else _find_upstream(pseudo, "cues", CUES)
    wsss = open_input(wsss_path, WSSS, dataset, "--wsss", same_data=True) if wsss_path else None
    cues = open_input(cues_path, CUES, dataset, "--cues", same_data=True) if cues_path else None
    c = dataset.num_classes
    try:
        # Build every panel first: a bad image half way must leave no overlay behind.
        panels = []
        for image_id in overlay_sample(dataset.image_ids, n):
            rec = dataset.record(image_id)
            d = read_pseudo(pseudo, rec, c)
            panels.append((Path(overlays_dir) / f"{image_id}.png",
                           overlay_panels(dataset.load_image(rec), read_wsss(wsss, rec, c).mask if wsss else None,
                                          read_cues(cues, rec, c).points if cues else None,
                                          d.instances, d.classes, d.centers, class_names=dataset.class_names)))
        written = []
        for p, panel in panels:
            write_rgb_png(p, panel)
            written.append(os.fspath(p))
        return written
    finally:
        for s in (wsss, cues):
            if s is not None:
                s.close()


def run_report(dataset: Dataset, pseudo_path: str | os.PathLike | None, out_json: str | os.PathLike | None = None,
               overlays_dir: str | os.PathLike | None = None, n_overlays: int = 8,
               wsss_path: str | os.PathLike | None = None, cues_path: str | os.PathLike | None = None,
               iou_thr: float = 0.5) -> dict:
    """Pseudo-label quality against GT instances, and overlay images.

    Counts per class and in total: pseudo instances, true positives (IoU >= ``iou_thr`` with an
    unmatched GT of the same class), GT instances, precision and recall (percent), see
    :mod:`bestie_labels.algorithms.matching`. ``out_json`` gets that dict plus the pseudo store's path and
    fingerprint. ``overlays_dir`` gets ``<id>.png`` (image | WSSS | cues | pseudo instances) for
    ``n_overlays`` images spread over the split; the WSSS and cues stores are ``wsss_path`` /
    ``cues_path`` or, when not given, the stores next to ``pseudo_path`` whose fingerprints the
    pseudo store recorded as its inputs.

    A split without GT (a folder dataset) gets the pseudo-instance counts and the overlays, and
    a note that precision and recall need GT. An explicit ``wsss_path`` also gets its mIoU
    against the GT class masks (key ``wsss`` of the summary, see
    :func:`bestie_labels.evaluation.wsss_miou.wsss_miou`); ``pseudo_path`` may then be None (mIoU only).

    ``lost`` (when the split has GT and both the cues and the WSSS stores behind the pseudo store
    are at hand): the fate of every GT instance, ``{"total": {fate: count}, "per_class": {name:
    {fate: count}}}`` with the fates of :mod:`bestie_labels.algorithms.instance_fates` (kept,
    no_cue, wsss_missed, merged, poor_mask), and one line of it in the table; ``cues``: the cue
    quality (``num_cues``, ``tp``: GT instances with a cue of their class inside, ``precision``,
    ``recall``, percent; a cue counts once per instance).

    Returns the summary dict with ``table`` (text) added.
    """
    from ..core.fileio import write_json
    from ..algorithms.matching import format_table, summarise, summarise_without_gt

    if pseudo_path is None:
        return _report_wsss_only(dataset, wsss_path, out_json)
    # VOC train_aug: only some images have GT; a split with none counts its pseudo instances.
    records = dataset.records_with_gt()
    with_gt = bool(records)
    records = records if with_gt else list(dataset.records)
    left_out = len(dataset.records) - len(records)
    miou = None
    if wsss_path is not None and with_gt:
        from ..evaluation.wsss_miou import wsss_miou

        miou = wsss_miou(dataset, wsss_path, records)
    with open_input(pseudo_path, PSEUDO, dataset, "--pseudo", same_data=True) as pseudo:
        counts, lost, cue_quality = _count_with_fates(dataset, pseudo, iou_thr, records, with_gt, wsss_path, cues_path)
        summary = (summarise if with_gt else summarise_without_gt)(counts, dataset.class_names)
        if left_out:
            summary["note"] = (f"{left_out} of the split's {len(dataset.records)} images have no GT masks "
                               "and are not scored")
        summary["iou_threshold"] = iou_thr
        # the dataset's own category ids (COCO: the JSON's), in class order, as in every export
        summary["categories"] = dataset.category_map().entries()
        summary["pseudo"] = {"path": os.fspath(pseudo_path), "fingerprint": pseudo.fingerprint}
        table = format_table(summary)
        if lost is not None:
            from ..algorithms.instance_fates import format_lost

            summary["lost"], summary["cues"] = lost, cue_quality
            table += "\n" + format_lost(lost)
            table += (f"\ncues: {cue_quality['num_cues']}, {cue_quality['tp']} inside a GT instance of their class "
                      "(once per instance)")
        if miou is not None:
            from ..evaluation.miou import format_miou

            summary["wsss"] = miou
            table += "\n\nWSSS " + os.fspath(wsss_path) + "\n" + format_miou(miou)
        written = []
        if overlays_dir is not None:
            written = _overlays(dataset, pseudo, overlays_dir, n_overlays, wsss_path, cues_path)
    if out_json is not None:
        write_json(out_json, summary, indent=1)
    return {**summary, "table": table, "overlays": written}


def _count_with_fates(dataset: Dataset, pseudo: Store, iou_thr: float, records: list, with_gt: bool,
                      wsss_path, cues_path) -> tuple[list[np.ndarray], dict | None, dict | None]:
    """:func:`_counts`, the fate counts of :func:`bestie_labels.algorithms.instance_fates.count_fates`
    and the cue quality (``num_cues``, ``tp`` = GT instances with a cue of their class inside,
    ``precision = 100 tp / num_cues``, ``recall = 100 tp / GT``: a cue counts once) when the split
    has GT and the cues and WSSS stores behind the pseudo store are at hand (else None, None)."""
    from ..algorithms.instance_fates import count_fates
    from ..algorithms.matching import _ratio

    paths = _fate_paths(pseudo, wsss_path, cues_path) if with_gt else None
    if paths is None:
        return _counts(dataset, pseudo, iou_thr, records, with_gt)[0], None, None
    with open_input(paths[0], CUES, dataset, "--cues", same_data=True) as cues, \
            open_input(paths[1], WSSS, dataset, "--wsss", same_data=True) as wsss:
        counts, fates = _counts(dataset, pseudo, iou_thr, records, with_gt, (cues, wsss))
    lost = count_fates([f[0] for f in fates], [f[1] for f in fates], dataset.class_names)
    n_cues, n_gt, tp = sum(f[2] for f in fates), sum(lost["total"].values()), sum(f[3] for f in fates)
    return counts, lost, {"num_cues": n_cues, "tp": tp, "precision": _ratio(tp, n_cues), "recall": _ratio(tp, n_gt)}


def _report_wsss_only(dataset: Dataset, wsss_path, out_json) -> dict:
    """``report --wsss`` without ``--pseudo``: the WSSS mIoU alone."""
    from ..evaluation.miou import format_miou
    from ..core.fileio import write_json
    from ..evaluation.wsss_miou import wsss_miou

    if wsss_path is None:
        raise BestieError("report needs --pseudo, --wsss or both")
    summary = {"wsss": wsss_miou(dataset, wsss_path)}
    if out_json is not None:
        write_json(out_json, summary, indent=1)
    return {**summary, "table": "WSSS " + os.fspath(wsss_path) + "\n" + format_miou(summary["wsss"]),
            "overlays": []}
