"""A pseudo-label store as label trees: VOC PNGs or BESTIE text files.

- VOC: ``SegmentationObject/<id>.png`` (instance n -> index n) and ``SegmentationClass/<id>.png``
  (class k -> index k + 1) palette PNGs; pixels of no pseudo instance are 0.
- BESTIE text: ``Center_points/<id>.txt`` with one ``x y cls conf`` line per pseudo instance.

Each tree is built in a temporary folder next to ``out``; then each file is moved into ``out``,
whose other files are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..core.errors import BestieError
from ..core.fileio import write_index_png
from ..datasets.base import Dataset
from ..store.checks import read_pseudo
from ..store.file import Store
from .coco_json import _progress


@contextlib.contextmanager
def _tree(out: str | os.PathLike, subdirs: Sequence[str]):
    """Yield a staging folder with ``subdirs`` to fill; when the block succeeds, each staged
    file is moved to ``out/<subdir>/``, replacing a file of the same name.

    Nothing else under ``out`` is touched: files of other splits, a README, anything the user
    keeps there stay (the CLI's output guard refuses beforehand to replace a file of the same
    name that this command did not write). A failure leaves ``out`` as it was.
    """
    from ..core.fileio import make_parent, remove_stale_temporaries

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
    from .points import write_points

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
