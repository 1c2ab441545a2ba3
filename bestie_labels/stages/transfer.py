"""The ``transfer`` stage: ``pseudo.h5``, per image the pseudo instances made by semantic
knowledge transfer from a ``cues`` and a ``wsss`` store (or the GT instances, ``from_gt``)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..datasets.base import Dataset, Record
from ..core.errors import BestieError
from ..store.file import Store
from ..store.checks import read_cues, read_wsss
from ..algorithms.knowledge_transfer import gt_to_pseudo, transfer_instances
from ..algorithms.transfer_options import TransferOptions
from ..store.inputs import CUES, PSEUDO, WSSS, cached_store, open_input
from .engine import StageSummary, write_stage_store


@dataclass(frozen=True)
class Transfer:
    """Transfer from the stores ``cues`` and ``wsss`` (paths) with these (resolved) options."""

    dataset: Dataset
    cues: str
    wsss: str
    options: TransferOptions = TransferOptions(center="centroid")


@dataclass(frozen=True)
class GtPseudo:
    """The GT instances as pseudo instances; ``center`` ``centroid`` or ``point`` (deepest pixel)."""

    dataset: Dataset
    center: str = "centroid"


def _pseudo_arrays(r: Mapping) -> tuple[dict, Counter]:
    arrays = {"instances": np.asarray(r["instances"], np.uint16),
              "classes": np.asarray(r["classes"], np.int32).reshape(-1),
              "centers": np.asarray(r["centers"], np.float32).reshape(-1, 2),
              "scores": np.asarray(r["scores"], np.float32).reshape(-1)}
    warn: Counter = Counter()
    if len(arrays["classes"]) == 0:
        warn["no_instance"] += 1
    return arrays, warn


def transferred(job: Transfer, rec: Record) -> tuple[dict, Counter]:
    """``({"instances" (H, W) uint16, "classes" (N,) int32, "centers" (N, 2) float32,
    "scores" (N,) float32}, warnings)`` of one image."""
    c = job.dataset.num_classes
    mask = read_wsss(cached_store(job.wsss, WSSS), rec, c).mask
    pts = read_cues(cached_store(job.cues, CUES), rec, c).points
    return _pseudo_arrays(transfer_instances(mask, pts, rec.labels, **job.options.keywords()))


def gt_pseudo(job: GtPseudo, rec: Record) -> tuple[dict, Counter]:
    """As :func:`transferred`, from the image's GT instances."""
    return _pseudo_arrays(gt_to_pseudo(job.dataset.load_gt(rec), center=job.center))


def _transfer_job(dataset: Dataset, cues_path, wsss_path, options: TransferOptions) -> tuple[Transfer, dict, dict]:
    if cues_path is None or wsss_path is None:
        raise BestieError("transfer needs --cues and --wsss (or --from-gt)")
    inputs = {"data": dataset.fingerprint()}
    with open_input(cues_path, CUES, dataset, "--cues", same_data=True) as cues, \
            open_input(wsss_path, WSSS, dataset, "--wsss", same_data=True) as wsss:
        options = options.resolved(point_cues=cues.options.get("method") == "points")
        inputs.update(cues=cues.fingerprint, wsss=wsss.fingerprint)
    job = Transfer(dataset, os.fspath(cues_path), os.fspath(wsss_path), options)
    return job, options.recorded(), inputs


def run_transfer(dataset: Dataset, cues_path: str | os.PathLike | None, wsss_path: str | os.PathLike | None,
                 out: str | os.PathLike, options: TransferOptions = TransferOptions(), workers: int = 1,
                 force: bool = False, shard: tuple[int, int] | None = None) -> StageSummary:
    """Write ``pseudo.h5`` by semantic knowledge transfer (or from GT with ``options.from_gt``).

    Per image: ``instances (H, W) uint16`` (0 none, n = instance n - 1), ``classes (N,) int32``,
    ``centers (N, 2) float32`` (x, y), ``scores (N,) float32``.

    Args:
        cues_path, wsss_path: a ``cues`` and a ``wsss`` store covering the split (ignored with
            ``from_gt``).
        options: :class:`~bestie_labels.algorithms.transfer_options.TransferOptions`:
            ``min_area`` (smaller components are dropped), ``connectivity`` (4 or 8),
            ``center`` (``"centroid"``, ``"point"``, or ``"auto"``: the cue itself when the
            cues store was made from points files (point supervision), else the component's
            centroid) and ``from_gt`` (write the GT instances in the same format: upper bound,
            test oracle; the center is the centroid (``auto``) or the deepest pixel (``point``)).
    """
    out = Path(out)
    if options.from_gt:
        options = options.resolved(point_cues=False)
        job, per_image = GtPseudo(dataset, options.center), gt_pseudo
        recorded, inputs = options.recorded(), {"data": dataset.fingerprint()}
    else:
        job, recorded, inputs = _transfer_job(dataset, cues_path, wsss_path, options)
        per_image = transferred
    return write_stage_store("transfer", PSEUDO, out, job, per_image, recorded, inputs, workers=workers,
                             force=force, shard=shard, extra=lambda: {"instances": count_instances(out)})


def count_instances(path: str | os.PathLike) -> int:
    """Pseudo instances in a finished ``pseudo`` store."""
    with Store(path, stage=PSEUDO) as s:
        return int(sum(s.shape(i, "classes")[0] for i in s.image_ids))
