"""Export a pseudo-label store (``pseudo.h5``) as COCO JSON, VOC PNG trees or BESTIE text files.

- COCO: an instances JSON (compressed RLE with ``counts`` as str, ``bbox`` from the mask,
  ``area``, ``iscrowd`` 0, ``images`` with ``file_name`` / ``height`` / ``width``, the
  dataset's own category and image ids) that pycocotools loads and detectron2 / MMDetection train on.
- VOC: ``SegmentationObject/<id>.png`` (instance n -> index n) and ``SegmentationClass/<id>.png``
  (class k -> index k + 1) palette PNGs; pixels of no pseudo instance are 0.
- BESTIE text: ``Center_points/<id>.txt`` with one ``x y cls conf`` line per pseudo instance.

Drawing (overlay panels, colours) lives in :mod:`bestie_labels.viz`.

Folder outputs are built in a temporary folder next to ``out``; then each file is moved into
``out``, whose other files are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from tqdm import tqdm

from .core.version import __version__
from .datasets.base import Dataset
from .core.errors import BestieError
from .core.fileio import write_index_png, write_json
from .core.rle import bbox as rle_bbox
from .core.rle import encode, instance_masks
from .store.file import Store
from .store.checks import read_pseudo


def image_entry(dataset: Dataset, rec) -> dict:
    """COCO ``images`` entry of a :class:`~bestie_labels.datasets.base.Record` of ``dataset``
    (its COCO id and ``file_name`` as :meth:`~bestie_labels.datasets.base.Dataset.coco_file_name`)."""
    return {"id": int(rec.coco_id), "file_name": dataset.coco_file_name(rec),
            "height": int(rec.height), "width": int(rec.width)}


def masks_to_annotations(masks: np.ndarray, classes: np.ndarray, image_id: int,
                         scores: np.ndarray | None = None, first_id: int = 1,
                         with_score: bool = False, category_ids: Sequence[int] | None = None) -> list[dict]:
    """COCO annotations (or results) for one image.

    Args:
        masks: ``(N, H, W) bool``; empty masks are skipped.
        classes: ``(N,)`` 0-based classes.
        image_id: the image's COCO id.
        scores: ``(N,) float`` confidences (written as ``score`` when ``with_score``).
        first_id: annotation id of the first kept mask (ids count up from it).
        with_score: also write ``score`` (results / predictions format).
        category_ids: ``(C,)`` the category id of each class (the dataset's
            :meth:`~bestie_labels.datasets.base.Dataset.category_ids`); None: class + 1.

    Returns:
        One dict per non-empty mask: ``id``, ``image_id``, ``category_id``, ``segmentation``
        (RLE, counts str), ``area``, ``bbox`` ``[x, y, w, h]``, ``iscrowd`` 0 (and ``score``).
    """
    masks = np.asarray(masks, bool)
    if masks.shape[0] == 0:
        return []
    rles = encode(masks)
    # Pixel counts from the masks: pycocotools' area() overflows with 256 or more RLEs under numpy 2.
    areas = masks.reshape(masks.shape[0], -1).sum(1, dtype=np.int64)
    boxes = rle_bbox(rles)
    classes = np.asarray(classes, np.int64)
    cids = classes + 1 if category_ids is None else np.asarray(category_ids, np.int64)[classes]
    out = []
    for n, rle in enumerate(rles):
        if areas[n] == 0:
            continue
        ann = {"id": first_id + len(out), "image_id": int(image_id),
               "category_id": int(cids[n]), "segmentation": rle,
               "area": int(areas[n]), "bbox": [float(v) for v in boxes[n]], "iscrowd": 0}
        if with_score and scores is not None:
            ann["score"] = float(scores[n])
        out.append(ann)
    return out


def results_to_coco_instances(dataset: Dataset, results: Iterable[dict]) -> dict:
    """A COCO instances JSON dict from results / predictions.

    ``results`` yields dicts ``image_id`` (COCO id), ``masks (N, H, W) bool``, ``classes (N,)``
    (0-based) and optionally ``scores (N,)``; the scores are kept as ``score``.
    """
    anns: list[dict] = []
    image_ids = []
    cat_ids = dataset.category_ids()
    for r in results:
        image_ids.append(int(r["image_id"]))
        anns += masks_to_annotations(r["masks"], r["classes"], r["image_id"], r.get("scores"),
                                     first_id=len(anns) + 1, with_score=True, category_ids=cat_ids)
    wanted = set(image_ids)
    images = [image_entry(dataset, rec) for rec in dataset.records if rec.coco_id in wanted]
    return {"info": {"description": "bestie predictions", "version": __version__},
            "images": images, "annotations": anns, "categories": dataset.coco_categories()}


def _progress(it, total, desc):
    return tqdm(it, total=total, desc=desc, unit="img", disable=None)


def coco_instances(dataset: Dataset, store: Store) -> dict:
    """The COCO instances JSON dict of a pseudo store (images in split order), in the dataset's
    own category ids, image ids and file names."""
    anns: list[dict] = []
    cat_ids = dataset.category_ids()
    for rec in _progress(dataset.records, len(dataset), "export coco"):
        d = read_pseudo(store, rec, dataset.num_classes)
        masks = instance_masks(d.instances, len(d.classes))
        anns += masks_to_annotations(masks, d.classes, rec.coco_id, d.scores, first_id=len(anns) + 1,
                                     category_ids=cat_ids)
    return {"info": {"description": "bestie pseudo instances", "version": __version__},
            "images": [image_entry(dataset, r) for r in dataset.records], "annotations": anns,
            "categories": dataset.coco_categories()}


def export_coco(dataset: Dataset, store: Store, out: str | os.PathLike) -> dict:
    """Write the COCO instances JSON of ``store`` to ``out`` (atomic). Returns counts."""
    js = coco_instances(dataset, store)
    write_json(out, js)
    return {"images": len(js["images"]), "instances": len(js["annotations"])}


@contextlib.contextmanager
def _tree(out: str | os.PathLike, subdirs: Sequence[str]):
    """Yield a staging folder with ``subdirs`` to fill; when the block succeeds, each staged
    file is moved to ``out/<subdir>/``, replacing a file of the same name.

    Nothing else under ``out`` is touched: files of other splits, a README, anything the user
    keeps there stay (the CLI's output guard refuses beforehand to replace a file of the same
    name that this command did not write). A failure leaves ``out`` as it was.
    """
    from .core.fileio import make_parent, remove_stale_temporaries

    out = Path(out)
    for p in (out, *(out / s for s in subdirs)):
        if p.exists() and not p.is_dir():
            raise BestieError("exists and is not a folder", p)
    make_parent(out)
    remove_stale_temporaries(out)
    # a pid-named temporary, so that the next run can recognise and remove a SIGKILLed one
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for s in subdirs:
            (tmp / s).mkdir()
        try:
            yield tmp
        except BestieError as e:  # name the file the user asked for, not the staging copy
            if e.path and e.path.startswith(os.fspath(tmp) + os.sep):
                raise BestieError(e.problem, out / os.path.relpath(e.path, tmp)) from None
            raise
        for s in subdirs:
            (out / s).mkdir(parents=True, exist_ok=True)
            for f in sorted((tmp / s).iterdir()):
                os.replace(f, out / s / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pseudo_to_voc(instances: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VOC PNG arrays of one image's pseudo instances.

    Args:
        instances: ``(H, W) uint16`` (0 none, n = instance n - 1).
        classes: ``(N,) int32`` 0-based.

    Returns:
        ``(object (H, W) uint8, class (H, W) uint8)``: instance n -> n, class k -> k + 1, 0 elsewhere.
    """
    n = len(classes)
    if n > 254:
        raise ValueError(f"{n} instances do not fit a VOC PNG (at most 254)")
    lut = np.zeros(n + 1, np.uint8)
    lut[1:] = np.asarray(classes, np.int64) + 1
    inst = np.asarray(instances, np.int64)
    return inst.astype(np.uint8), lut[inst]


def export_voc(dataset: Dataset, store: Store, out: str | os.PathLike) -> dict:
    """Write ``out/SegmentationObject/<id>.png`` and ``out/SegmentationClass/<id>.png``."""
    n_inst = 0
    with _tree(out, ("SegmentationObject", "SegmentationClass")) as tmp:
        for rec in _progress(dataset.records, len(dataset), "export voc"):
            d = read_pseudo(store, rec, dataset.num_classes)
            if len(d.classes) > 254:
                raise BestieError(f"image {rec.image_id} has {len(d.classes)} instances; "
                                  "a VOC PNG holds at most 254", store.path)
            obj, cls = pseudo_to_voc(d.instances, d.classes)
            write_index_png(tmp / "SegmentationObject" / f"{rec.image_id}.png", obj)
            write_index_png(tmp / "SegmentationClass" / f"{rec.image_id}.png", cls)
            n_inst += len(d.classes)
    return {"images": len(dataset), "instances": n_inst}


def export_points_tree(dataset: Dataset, out: str | os.PathLike, subdir: str,
                       points_of: Callable[[str], np.ndarray], desc: str = "export txt") -> dict:
    """Write ``out/<subdir>/<id>.txt`` (official ``x y cls conf`` lines) for every image.

    ``points_of(image_id)`` returns ``(N, 4) float32`` rows x, y, cls, conf.
    """
    from .formats.points import write_points

    n = 0
    with _tree(out, (subdir,)) as tmp:
        for rec in _progress(dataset.records, len(dataset), desc):
            pts = np.asarray(points_of(rec.image_id), np.float32).reshape(-1, 4)
            write_points(tmp / subdir / f"{rec.image_id}.txt", pts)
            n += len(pts)
    return {"images": len(dataset), "points": n}


def export_bestie_txt(dataset: Dataset, store: Store, out: str | os.PathLike) -> dict:
    """Write ``out/Center_points/<id>.txt``: one ``x y cls conf`` line per pseudo instance."""

    def centers(image_id: str) -> np.ndarray:
        d = read_pseudo(store, dataset.record(image_id), dataset.num_classes)
        return np.concatenate([d.centers.reshape(-1, 2), d.classes.reshape(-1, 1),
                               d.scores.reshape(-1, 1)], axis=1).astype(np.float32)

    r = export_points_tree(dataset, out, "Center_points", centers, "export bestie-txt")
    return {"images": r["images"], "instances": r["points"]}
