"""The ``wsss`` stage: ``wsss.h5``, per image a class mask ``mask (H, W) uint8`` (0 background,
k + 1 class k, 255 ignore), imported from PNGs, made by IRN or CAMs, or the GT's."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..algorithms.class_mask import check_class_mask
from ..core.constants import VOID
from ..datasets.base import Dataset, Record
from ..core.errors import BestieError
from ..core.fileio import read_index_png, sha256_file
from ..store.inputs import WSSS
from .engine import StageSummary, files_digest, require_checkpoint, write_stage_store

WSSS_METHODS = ("irn", "cam")


@dataclass(frozen=True)
class ImportedMasks:
    """Index PNGs ``<import_dir>/<id>.png``; ``clean`` drops classes the label does not list."""

    dataset: Dataset
    import_dir: str
    clean: bool = False


@dataclass(frozen=True)
class GtMasks:
    """The GT class masks (the upper bound; a test oracle)."""

    dataset: Dataset


@dataclass(frozen=True)
class CamMasks:
    """A classifier's CAMs (PAM off) through ``cam_to_mask`` with ``bg_threshold``."""

    dataset: Dataset
    bg_threshold: float
    device: str = "cpu"
    model: Any = None  # loaded only when there is work to do


@dataclass(frozen=True)
class IrnMasks:
    """CAMs propagated by IRN's random walk (:mod:`bestie_labels.irn`)."""

    dataset: Dataset
    params: Any  # bestie_labels.irn.infer.IrnParams
    device: str = "cpu"
    classifier: Any = None  # loaded only when there is work to do
    net: Any = None


def imported_mask(job: ImportedMasks, rec: Record) -> tuple[dict, Counter]:
    path = Path(job.import_dir) / f"{rec.image_id}.png"
    mask = read_index_png(path, (rec.height, rec.width))
    mask, warn = check_class_mask(mask, rec.labels, job.dataset.class_names, path, clean=job.clean)
    return {"mask": mask}, warn


def gt_mask(job: GtMasks, rec: Record) -> tuple[dict, Counter]:
    mask = job.dataset.load_gt(rec).semantic()
    mask, warn = check_class_mask(mask, rec.labels, job.dataset.class_names, rec.file_name, clean=True)
    return {"mask": mask}, warn


def _foreground_warning(mask: np.ndarray) -> Counter:
    warn: Counter = Counter()
    if not ((mask > 0) & (mask != VOID)).any():
        warn["no_foreground"] += 1
    return warn


def cam_mask(job: CamMasks, rec: Record) -> tuple[dict, Counter]:
    from ..classifier.cam_wsss import cam_to_mask
    from ..classifier.maps import activation_maps

    from ..core.torch_threads import threads_for

    with threads_for(job.model.backbone_name, job.device):
        maps = activation_maps(job.model, job.dataset.load_image(rec), rec.labels, job.device, pam=False)
    mask = np.asarray(cam_to_mask(maps, rec.labels, job.bg_threshold), np.uint8)
    return {"mask": mask}, _foreground_warning(mask)


def irn_mask(job: IrnMasks, rec: Record) -> tuple[dict, Counter]:
    from ..irn.infer import irn_class_mask
    from ..core.torch_threads import threads_for

    with threads_for(job.classifier.backbone_name, job.device):
        mask, _ = irn_class_mask(job.classifier, job.net, job.dataset.load_image(rec), rec.labels,
                                 job.params, job.device)
    mask = np.asarray(mask, np.uint8)
    return {"mask": mask}, _foreground_warning(mask)


def _load_cam(checkpoint, job: CamMasks) -> CamMasks:
    from ..classifier.maps import load_classifier

    model, _ = load_classifier(checkpoint, job.device, num_classes=job.dataset.num_classes)
    return replace(job, model=model)


def _load_irn(checkpoint, job: IrnMasks) -> IrnMasks:
    from ..irn.checkpoint import load_irn

    classifier, net, _ = load_irn(checkpoint, job.device, num_classes=job.dataset.num_classes)
    return replace(job, classifier=classifier, net=net)


def _model_job(dataset: Dataset, method: str, checkpoint, bg_threshold, irn: Mapping,
               device: str) -> tuple[Any, dict, Callable, Callable]:
    """Job, options, per-image function and loader of ``--method irn|cam``."""
    if method not in WSSS_METHODS:
        raise BestieError(f"unknown WSSS method {method!r} ({', '.join(WSSS_METHODS)})")
    what = "an IRN checkpoint from train-irn" if method == "irn" else "a classifier from train-pam"
    require_checkpoint(checkpoint, method, what)
    if method == "irn":
        from ..irn.wsss import irn_options, irn_params

        params = irn_params(bg_score=bg_threshold, **irn)
        return IrnMasks(dataset, params, device), irn_options(params), irn_mask, lambda j: _load_irn(checkpoint, j)
    if irn:
        raise BestieError(f"{', '.join(sorted(irn))}: IRN options, not for --method cam")
    if bg_threshold is None:
        from ..classifier.cam_wsss import DEFAULT_BG_THRESHOLD

        bg_threshold = DEFAULT_BG_THRESHOLD
    options = {"method": "cam", "bg_threshold": float(bg_threshold)}
    return CamMasks(dataset, float(bg_threshold), device), options, cam_mask, lambda j: _load_cam(checkpoint, j)


def run_wsss(dataset: Dataset, out: str | os.PathLike, import_dir: str | os.PathLike | None = None,
             method: str | None = None, checkpoint: str | os.PathLike | None = None,
             bg_threshold: float | None = None, clean: bool = False, from_gt: bool = False,
             device: str = "cpu", workers: int = 1, force: bool = False,
             shard: tuple[int, int] | None = None, irn: Mapping[str, Any] | None = None) -> StageSummary:
    """Write ``wsss.h5``: per image ``mask (H, W) uint8`` (0 background, k + 1 class k, 255 ignore).

    Exactly one source:

    - ``import_dir``: index PNGs ``<dir>/<id>.png`` (the official ``WSSS_maps/``, VOC palette:
      0 background, k = class k - 1, 255 ignore), checked against the image size and the
      image-level label (see :func:`check_class_mask`; ``clean`` drops unlisted classes);
    - ``method="irn"`` (the default when only ``checkpoint`` is given): an IRN checkpoint from
      ``train-irn``: CAMs propagated by a random walk within the learned boundaries, touching
      instances cut apart (:mod:`bestie_labels.irn`); ``bg_threshold`` is its background score
      and ``irn`` may set ``radius``, ``beta``, ``exp_times``, ``cut_threshold``;
    - ``method="cam"``: a classifier checkpoint's CAMs (PAM disabled) through ``cam_to_mask``
      with ``bg_threshold``;
    - ``from_gt``: the GT class masks (the upper bound; a test oracle).
    """
    out = Path(out)
    if method is None and checkpoint is not None and import_dir is None and not from_gt:
        method = "irn"
    if sum([import_dir is not None, method is not None, bool(from_gt)]) != 1:
        raise BestieError("give exactly one of --import DIR, --checkpoint (with --method irn or cam), --from-gt")
    inputs = {"data": dataset.fingerprint()}
    load = None
    if import_dir is not None:
        import_dir = Path(import_dir)
        if not import_dir.is_dir():
            raise BestieError("mask folder not found", import_dir)
        job, per_image = ImportedMasks(dataset, os.fspath(import_dir), bool(clean)), imported_mask
        options = {"method": "import", "clean": bool(clean)}
        inputs["masks"] = files_digest([import_dir / f"{i}.png" for i in dataset.image_ids])
    elif from_gt:
        job, options, per_image = GtMasks(dataset), {"method": "gt"}, gt_mask
    else:
        job, options, per_image, load = _model_job(dataset, method, checkpoint, bg_threshold, irn or {}, device)
        inputs["checkpoint"] = sha256_file(checkpoint)
    return write_stage_store(WSSS, WSSS, out, job, per_image, options, inputs, workers=workers, force=force,
                             shard=shard, load=load)
