"""Dataset readers: VOC2012 trees, COCO instances JSON, and folders with ``labels.csv``.

:func:`open_dataset` detects the kind from the path: a folder holding ``JPEGImages/`` is a VOC
root, a ``.json`` file a COCO instances file (its images under ``images``), a folder holding
``labels.csv`` a custom folder. ``data_format`` forces the kind.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import BestieError
from .base import VOC_CLASSES, Dataset, GtInstances, Record, check_disjoint
from .ids import CategoryIds, coco_image_ids

FORMATS = ("voc", "coco", "folder")

__all__ = ["open_dataset", "detect_format", "Dataset", "GtInstances", "Record", "VOC_CLASSES",
           "coco_image_ids", "CategoryIds", "check_disjoint", "FORMATS"]


def detect_format(path: str | os.PathLike) -> str:
    """``"voc"``, ``"coco"`` or ``"folder"`` for ``path``; BestieError when it is none of them."""
    path = Path(path)
    if not path.exists():
        raise BestieError("dataset not found", path)
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        raise BestieError("not a dataset: expected a VOC root, a COCO .json or a folder with labels.csv", path)
    if (path / "JPEGImages").is_dir():
        return "voc"
    if (path / "labels.csv").is_file():
        return "folder"
    if not any(path.iterdir()):
        raise BestieError("dataset folder is empty", path)
    raise BestieError("not a dataset: no JPEGImages/ (VOC) and no labels.csv (folder)", path)


def open_dataset(path: str | os.PathLike, split: str = "train", data_format: str | None = None,
                 images: str | os.PathLike | None = None,
                 labels: str | os.PathLike | None = None) -> Dataset:
    """Open split ``split`` of the dataset at ``path``.

    Args:
        path: VOC root, COCO instances JSON, or folder with ``labels.csv``.
        split: VOC: ``ImageSets/Segmentation/<split>.txt`` (not read when ``labels`` is given:
            the label file lists the images); COCO: ignored, the split is named by the JSON's
            stem; folder: the CSV's ``split`` column when it has one, else ignored (``"all"``).
        data_format: ``"voc" | "coco" | "folder"`` to skip detection.
        images: COCO image folder (required for COCO).
        labels: VOC only: label file ``name c1 c2 ...`` (0-based) replacing the XML labels.

    Returns a :class:`Dataset` with ``points_dir`` (``Path`` or None).
    """
    path = Path(path)
    if data_format is None:
        data_format = detect_format(path)
    elif data_format not in FORMATS:
        raise BestieError(f"unknown data format {data_format!r} (expected voc, coco or folder)", path)
    elif not path.exists():
        raise BestieError("dataset not found", path)
    if labels is not None and data_format != "voc":
        raise BestieError("a label file (--labels) applies to VOC data only", labels)
    if data_format == "voc":
        from .voc import open_voc

        return open_voc(path, split, labels=labels)
    if data_format == "coco":
        from .coco import open_coco

        if path.is_dir():
            raise BestieError("a COCO dataset is an instances .json file, not a folder", path)
        return open_coco(path, images, split)
    from .folder import open_folder

    return open_folder(path, split)
