"""The ``merge`` and ``export`` stages: join shards of a store; write a pseudo store in the
COCO, VOC or BESTIE text formats."""

from __future__ import annotations

import os
from typing import Sequence

from ..datasets.base import Dataset
from ..core.errors import BestieError
from ..store.file import Store
from ..store.merge import merge_stores
from ..store.inputs import PSEUDO, open_input
from ..formats.exports import EXPORT_FORMATS, exporter
from .engine import StageSummary


def merge(parts: Sequence[str | os.PathLike], out: str | os.PathLike, force: bool = False) -> StageSummary:
    """Join ``--shard I/N`` stores into one (see :func:`bestie_labels.store.file.merge_stores`)."""
    path = merge_stores(parts, out, force=force)
    with Store(path) as s:
        return StageSummary("merge", os.fspath(path), len(s), len(s),
                            extra={"parts": len(parts), "merged_stage": s.stage})


def run_export(dataset: Dataset, pseudo_path: str | os.PathLike, fmt: str, out: str | os.PathLike) -> StageSummary:
    """Export a pseudo store: ``coco`` (instances JSON), ``voc`` (SegmentationObject/ and
    SegmentationClass/ PNG trees under ``out``) or ``bestie-txt`` (``out/Center_points/``)."""
    if fmt not in EXPORT_FORMATS:
        raise BestieError(f"unknown export format {fmt!r} ({', '.join(EXPORT_FORMATS)})")
    fn = exporter(fmt)
    with open_input(pseudo_path, PSEUDO, dataset, "--pseudo", same_data=True) as store:
        counts = fn(dataset, store, out)
    return StageSummary(f"export {fmt}", os.fspath(out), counts["images"], counts["images"],
                        extra={"instances": counts["instances"]})
