"""The ``cues`` stage: ``cues.h5``, per image the point cues ``points (N, 4) float32``
(x, y, class 0-based, confidence), from points files or from a classifier's activation maps."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets.base import Dataset, Record
from ..core.errors import BestieError
from ..core.fileio import sha256_file
from ..store.file import Store
from ..store.checks import read_cues
from ..store.inputs import CUES
from .engine import StageSummary, files_digest, require_checkpoint, write_stage_store

#: ``--min-conf`` when not given: every point of a points file; for peaks from activation maps
#: 0.7, the threshold the official training code applies to ``Peak_points/`` (which it writes
#: with peaks >= 0.1: ``--min-conf 0.1`` reproduces those files).
DEFAULT_MIN_CONF = {"points": 0.0, "pam": 0.7, "cam": 0.7}
PEAK_KERNEL, PEAK_TOPK = 15, 25


@dataclass(frozen=True)
class PointsCues:
    """Cues read from official ``x y cls conf`` files ``<points_dir>/<id>.txt``."""

    dataset: Dataset
    points_dir: str
    min_conf: float


@dataclass(frozen=True)
class MapCues:
    """Cues as the peaks of a classifier's activation maps (``pam``: PAM on at inference)."""

    dataset: Dataset
    pam: bool
    min_conf: float
    device: str = "cpu"
    save_maps: bool = False
    scales: tuple = (1.0,)
    kernel: int = PEAK_KERNEL
    topk: int = PEAK_TOPK
    model: Any = None  # loaded only when there is work to do


def _drop_foreign(pts: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop points whose class is not in the image-level label; returns (kept, n dropped)."""
    keep = np.asarray(labels, bool)[pts[:, 2].astype(np.int64)] if len(pts) else np.zeros(0, bool)
    return pts[keep], int((~keep).sum())


def cues_from_points(job: PointsCues, rec: Record) -> tuple[dict, Counter]:
    """``({"points": (N, 4) float32}, warnings)`` of one image from its points file."""
    from ..formats.points import read_points

    path = Path(job.points_dir) / f"{rec.image_id}.txt"
    warn: Counter = Counter()
    if not path.is_file():
        pts = np.zeros((0, 4), np.float32)
        warn["missing_points_file"] += 1
    else:
        pts = read_points(path, rec.height, rec.width, job.dataset.num_classes, min_conf=job.min_conf)
    pts, dropped = _drop_foreign(pts, rec.labels)
    warn["cues_not_in_label"] += dropped
    if not rec.labels.any():
        warn["empty_label"] += 1
    return {"points": pts}, warn


def cues_from_maps(job: MapCues, rec: Record) -> tuple[dict, Counter]:
    """``({"points": (N, 4) float32[, "maps", "map_classes"]}, warnings)`` of one image."""
    from ..classifier.maps import activation_maps
    from ..classifier.peaks import extract_peaks
    from ..core.torch_threads import threads_for

    image = job.dataset.load_image(rec)
    if image.shape[:2] != (rec.height, rec.width):
        raise BestieError(f"image is {image.shape[1]}x{image.shape[0]} but its record says "
                          f"{rec.width}x{rec.height}", rec.file_name)
    with threads_for(job.model.backbone_name, job.device):
        maps = activation_maps(job.model, image, rec.labels, job.device, pam=job.pam, scales=job.scales)
    pts = np.asarray(extract_peaks(maps, rec.labels, kernel=job.kernel, topk=job.topk,
                                   min_conf=job.min_conf), np.float32).reshape(-1, 4)
    arrays = {"points": pts}
    if job.save_maps:
        cls = np.flatnonzero(rec.labels)
        arrays["maps"] = np.asarray(maps)[cls].astype(np.float16)
        arrays["map_classes"] = cls.astype(np.int32)
    warn: Counter = Counter()
    if not rec.labels.any():
        warn["empty_label"] += 1
    return arrays, warn


def _load_classifier(checkpoint, job: MapCues) -> MapCues:
    from ..classifier.maps import load_classifier

    model, _ = load_classifier(checkpoint, job.device, num_classes=job.dataset.num_classes)
    return replace(job, model=model)


def _points_job(dataset: Dataset, points_dir, min_conf: float) -> tuple[PointsCues, dict, dict]:
    if points_dir is None:
        points_dir = getattr(dataset, "points_dir", None)
        if points_dir is None:
            raise BestieError("--points DIR is needed: this dataset has no points/ folder", dataset.root)
    points_dir = Path(points_dir)
    if not points_dir.is_dir():
        raise BestieError("points folder not found", points_dir)
    inputs = {"data": dataset.fingerprint(),
              "points": files_digest([points_dir / f"{i}.txt" for i in dataset.image_ids])}
    return PointsCues(dataset, os.fspath(points_dir), min_conf), {"method": "points", "min_conf": min_conf}, inputs


def _maps_job(dataset: Dataset, method: str, checkpoint, min_conf: float, device: str,
              save_maps: bool, scales, peak_kernel) -> tuple[MapCues, dict, dict]:
    from ..classifier.maps import check_scales

    require_checkpoint(checkpoint, method, "a classifier from train-pam")
    kernel = PEAK_KERNEL if peak_kernel is None else int(peak_kernel)
    if kernel < 1 or kernel % 2 == 0:
        raise BestieError(f"--peak-kernel must be odd and at least 1, got {peak_kernel}")
    try:
        scales = (1.0,) if scales is None else check_scales(scales)
    except ValueError as e:
        raise BestieError(f"--scales: {e}") from None
    options = {"method": method, "min_conf": min_conf, "kernel": kernel, "topk": PEAK_TOPK,
               "save_maps": bool(save_maps), "scales": list(scales)}
    inputs = {"data": dataset.fingerprint(), "checkpoint": sha256_file(checkpoint)}
    job = MapCues(dataset, method == "pam", min_conf, device, bool(save_maps), scales, kernel=kernel)
    return job, options, inputs


def run_cues(dataset: Dataset, out: str | os.PathLike, method: str = "points",
             points_dir: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
             min_conf: float | None = None, device: str = "cpu", save_maps: bool = False, scales=None,
             peak_kernel: int | None = None, export_txt: str | os.PathLike | None = None, workers: int = 1, force: bool = False,
             shard: tuple[int, int] | None = None) -> StageSummary:
    """Write ``cues.h5``: per image ``points (N, 4) float32`` = x, y, class (0-based), confidence.

    Args:
        dataset: the split.
        out: the store path.
        method: ``"points"`` reads official ``x y cls conf`` files (``Peak_points/``,
            ``Center_points/``, or the demo data's ``points/`` when ``points_dir`` is None);
            ``"pam"`` / ``"cam"`` extract peaks from the activation maps of a classifier
            checkpoint (``"cam"``: PAM disabled at inference).
        min_conf: keep cues with ``conf >= min_conf`` (default :data:`DEFAULT_MIN_CONF`).
        scales: (pam/cam) factors of the inference size, maps averaged over them (None: ``(1.0,)``;
            numbers or ``"1,0.5,1.5,2"``).
        peak_kernel: (pam/cam) odd max-pool window of the peak search (None: 15, official).
        save_maps: (pam/cam) also store ``maps (C', H, W) float16`` of the labelled classes
            and ``map_classes (C',) int32``.
        export_txt: also write the cues as official text files ``<dir>/<id>.txt``.
        workers: processes (pam/cam on a GPU ``device`` run in this process).

    A missing points file means no cue for that image and cues of classes the image-level label
    does not list are dropped; both are counted as warnings in the summary.
    """
    out = Path(out)
    if method not in DEFAULT_MIN_CONF:
        raise BestieError(f"unknown cue method {method!r} (points, pam or cam)")
    min_conf = DEFAULT_MIN_CONF[method] if min_conf is None else float(min_conf)
    if method == "points":
        if scales is not None or peak_kernel is not None:
            raise BestieError("--scales and --peak-kernel are for cues from a classifier's maps (--method pam or "
                              "cam)")
        job, options, inputs = _points_job(dataset, points_dir, min_conf)
        per_image, load = cues_from_points, None
    else:
        job, options, inputs = _maps_job(dataset, method, checkpoint, min_conf, device, save_maps, scales,
                                         peak_kernel)
        per_image, load = cues_from_maps, lambda j: _load_classifier(checkpoint, j)
    s = write_stage_store(CUES, CUES, out, job, per_image, options, inputs, workers=workers, force=force,
                          shard=shard, load=load)
    if export_txt is not None:
        s = replace(s, extra={**s.extra, "export_txt": _export_txt(dataset, out, method, export_txt, shard)})
    return s


def _export_txt(dataset: Dataset, out: Path, method: str, export_txt, shard) -> str:
    """Write the cues of ``out`` as official text files; returns their folder."""
    if shard is not None:
        raise BestieError("--export-txt needs the whole split: merge the shards, then export", export_txt)
    from ..formats.label_trees import export_points_tree

    sub = "Center_points" if method == "points" else "Peak_points"
    with Store(out, stage=CUES) as st:
        export_points_tree(dataset, export_txt, sub,
                           lambda i: read_cues(st, dataset.record(i), dataset.num_classes).points, "export cues")
    return os.fspath(Path(export_txt) / sub)
