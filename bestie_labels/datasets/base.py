"""What every dataset reader returns: records, GT instances, COCO ids, a fingerprint."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from ..core.constants import VOID
from ..core.errors import BestieError
from ..core.fileio import read_image, sha256_json
from .ids import CategoryIds, coco_image_ids

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


@dataclass
class Record:
    """One image of a split.

    Attributes:
        image_id: the file stem (``"2007_000032"``); unique within the dataset.
        file_name: absolute path of the image file.
        height, width: image size in pixels.
        labels: ``(C,) bool`` image-level label.
        coco_id: integer id used in every COCO JSON the project reads or writes.
    """

    image_id: str
    file_name: str
    height: int
    width: int
    labels: np.ndarray
    coco_id: int = -1


@dataclass
class GtInstances:
    """Ground-truth instances of one image.

    Attributes:
        masks: ``(N, H, W) bool``.
        classes: ``(N,) int64``, 0-based class indices.
        crowd: ``(N,) bool``, True for COCO crowd regions (ignored by evaluation).
        void: ``(H, W) bool``, VOC void pixels (255), never part of an instance.
    """

    masks: np.ndarray
    classes: np.ndarray
    crowd: np.ndarray
    void: np.ndarray

    def semantic(self) -> np.ndarray:
        """Class mask ``(H, W) uint8``: 0 background, k + 1 for class k, 255 void."""
        h, w = self.void.shape
        sem = np.zeros((h, w), np.uint8)
        keep = ~self.crowd
        if keep.any():
            m = self.masks[keep]
            cls = self.classes[keep]
            anyfg = m.any(0)
            # Later instances win where masks overlap (COCO); VOC masks never overlap.
            idx = m.shape[0] - 1 - np.argmax(m[::-1], axis=0)
            sem[anyfg] = (cls[idx] + 1).astype(np.uint8)[anyfg]
        sem[self.void] = VOID
        return sem

    def instance_map(self) -> np.ndarray:
        """``(H, W) int32``: 0 where no instance, n + 1 for instance n (crowd excluded)."""
        h, w = self.void.shape
        inst = np.zeros((h, w), np.int32)
        for n in np.flatnonzero(~self.crowd):
            inst[self.masks[n]] = n + 1
        inst[self.void] = 0
        return inst


@dataclass
class Dataset:
    """A split of a dataset: records plus access to pixels and GT.

    Subclasses implement :meth:`load_gt` (and may override :meth:`load_image`).
    """

    root: Path
    split: str
    class_names: list[str]
    records: list[Record]
    kind: str = "base"
    extra_fingerprint: dict = field(default_factory=dict)
    points_dir: Path | None = None  # point files (`x y cls conf`) shipped with the dataset, if any
    #: False for data with no splits (a COCO JSON, a folder without a split column): there,
    #: ``split`` names the whole file/folder, and validation needs another dataset (--val-data).
    has_splits: bool = True
    #: what gave the records' sizes, named when an image does not have that size
    size_source: ClassVar[str] = "the dataset"

    def __post_init__(self) -> None:
        ids = coco_image_ids([r.image_id for r in self.records])
        for r, i in zip(self.records, ids):
            r.coco_id = i
        self._by_id = {r.image_id: r for r in self.records}
        self._by_coco = {r.coco_id: r for r in self.records}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_ids(self) -> list[str]:
        return [r.image_id for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]

    def record(self, image_id: str) -> Record:
        return self._by_id[image_id]

    def record_by_coco_id(self, coco_id: int) -> Record | None:
        return self._by_coco.get(int(coco_id))

    def coco_categories(self) -> list[dict]:
        """The ``categories`` of every COCO JSON written for this dataset, in class order:
        ``[{"id", "name", "supercategory"}]``. A dataset without ids of its own (VOC, folder)
        numbers them 1..C; a COCO dataset keeps its JSON's entries (ids with gaps, e.g. 1..90)."""
        return self.category_map().entries()

    def category_map(self) -> CategoryIds:
        """Class index <-> the dataset's category id (:class:`~.ids.CategoryIds`); 1..C here."""
        return CategoryIds.numbered(self.class_names)

    def category_ids(self) -> np.ndarray:
        """``(C,) int64``: the category id of each class index (``coco_categories`` order)."""
        return self.category_map().ids

    def coco_file_name(self, rec: Record) -> str:
        """The ``file_name`` of ``rec`` in a COCO ``images`` entry: the file's name; a COCO
        dataset keeps its JSON's (subfolders included), so the same image root serves."""
        return os.path.basename(rec.file_name)

    def load_image(self, rec: Record) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB as displayed (EXIF orientation applied); an image whose size
        differs from the record's (annotation, JSON) is refused: masks of it would not fit."""
        img = read_image(rec.file_name)
        if img.shape[:2] != (rec.height, rec.width):
            raise self.size_error(rec, *img.shape[:2])
        return img

    def size_error(self, rec: Record, h: int, w: int) -> BestieError:
        """The error of an image of ``h x w`` px (as displayed) whose record says otherwise."""
        return BestieError(f"image is {w}x{h} but {self.size_source} says {rec.width}x{rec.height}"
                           + turn_hint(rec, h, w), rec.file_name)

    def load_gt(self, rec: Record) -> GtInstances:
        raise BestieError("this dataset has no ground-truth instances", rec.file_name)

    def has_gt(self, rec: Record) -> bool:
        """Whether :meth:`load_gt` has GT for this image (VOC train_aug: only the VOC 2012
        images have ``SegmentationObject`` masks, not the SBD ones)."""
        return type(self).load_gt is not Dataset.load_gt

    def records_with_gt(self) -> list[Record]:
        """The records :meth:`has_gt` accepts, in split order."""
        return [rec for rec in self.records if self.has_gt(rec)]

    def fingerprint(self) -> str:
        """Identifies the split's content cheaply: ids, labels, image sizes and file sizes."""
        rows = []
        for r in self.records:
            try:
                size = Path(r.file_name).stat().st_size
            except OSError:
                size = -1
            rows.append([r.image_id, r.height, r.width, np.flatnonzero(r.labels).tolist(), size])
        return sha256_json({"kind": self.kind, "split": self.split, "classes": self.class_names,
                            "records": rows, "extra": self.extra_fingerprint})


def turn_hint(rec: Record, h: int, w: int) -> str:
    """Said when an image's size is its record's turned by 90 degrees: an EXIF orientation."""
    return " (its EXIF orientation turns it: give the size as displayed)" if (h, w) == (rec.width, rec.height) else ""


def check_disjoint(train: Dataset, val: Dataset) -> None:
    """Refuse a validation set that shares images with the training set.

    A metric computed on training images must never be reported as validation. Images are
    compared by file path, so the same files under two split names are caught too.
    """
    seen = {r.file_name for r in train.records}
    shared = [r.image_id for r in val.records if r.file_name in seen]
    if shared:
        raise BestieError(f"the validation data '{val.split}' shares {len(shared)} of its {len(val)} images with "
                          f"the training data '{train.split}' (first: {shared[0]}); validate on other images "
                          "(--val-split / --val-data) or pass --val-split none", val.root)
