"""``report --wsss``: mIoU of a WSSS store against the GT class masks of its split."""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from ..datasets.base import Dataset
from ..core.errors import BestieError
from .miou import confusion, miou_summary
from ..store.checks import read_wsss
from ..store.inputs import WSSS, open_input


def wsss_miou(dataset: Dataset, wsss_path: str | os.PathLike, records: list | None = None) -> dict:
    """Per-class IoU and mIoU (percent, background included, GT void ignored) of the masks in
    ``wsss_path`` over the images of ``dataset`` that have GT, or over ``records`` when the
    caller has already picked them (see :mod:`bestie_labels.evaluation.miou`).

    Returns the :func:`~bestie_labels.evaluation.miou.miou_summary` dict plus ``path``,
    ``fingerprint`` and ``method`` (the store's ``method`` option) of the store and ``images``
    (how many were scored).
    """
    records = dataset.records_with_gt() if records is None else records
    if not records:
        raise BestieError(f"no image of split {dataset.split!r} has GT masks: no mIoU", dataset.root)
    n = dataset.num_classes + 1
    conf = np.zeros((n, n), np.int64)
    with open_input(wsss_path, WSSS, dataset, "--wsss") as store:
        for rec in tqdm(records, desc="wsss mIoU", unit="img", disable=None):
            mask = read_wsss(store, rec, dataset.num_classes).mask  # checked: the image's size, values
            gt = dataset.load_gt(rec).semantic()
            if mask.shape != gt.shape:
                raise BestieError(f"image {rec.image_id}: WSSS mask is {mask.shape[1]}x{mask.shape[0]} but the "
                                  f"GT is {gt.shape[1]}x{gt.shape[0]}", store.path)
            conf += confusion(mask, gt, dataset.num_classes)
        info = {"path": os.fspath(wsss_path), "fingerprint": store.fingerprint,
                "method": store.options.get("method"), "images": len(records)}
    return {**miou_summary(conf, dataset.class_names), **info}
