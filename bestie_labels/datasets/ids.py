"""A dataset's own ids: contiguous class index <-> category id, image stem -> image id.

Inside, classes are contiguous indices 0..C-1; every COCO JSON read or written uses the
dataset's ids, as detectron2's ``thing_dataset_id_to_contiguous_id`` and MMDetection's
``cat2label`` do. A COCO dataset keeps its JSON's ids (COCO 2017: 1..90 with gaps); VOC and
folder datasets, which have no ids, number categories 1..C in class order and images by
:func:`coco_image_ids`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

_VOC_STEM = re.compile(r"^(\d{4})_(\d{6})$")


def coco_image_ids(stems: Sequence[str]) -> list[int]:
    """The integer image id of each stem, for a dataset without image ids of its own.

    A VOC stem ``YYYY_NNNNNN`` becomes the integer ``YYYYNNNNNN``; if any stem of the split is
    not of that form, every image gets its 1-based position in the sorted list of stems.
    """
    stems = list(stems)
    if stems and all(_VOC_STEM.match(s) for s in stems):
        return [int(s.replace("_", "")) for s in stems]
    order = {s: i + 1 for i, s in enumerate(sorted(stems))}
    return [order[s] for s in stems]


@dataclass(frozen=True)
class CategoryIds:
    """The ``categories`` entries ``[{"id", "name", "supercategory"}]`` in class order: entry
    k is class k. Built by :meth:`numbered` (1..C) or from a COCO JSON's entries."""

    categories: tuple

    @classmethod
    def numbered(cls, class_names: Sequence[str]) -> "CategoryIds":
        """Ids 1..C in class order (a dataset without ids of its own)."""
        return cls(tuple({"id": k + 1, "name": str(n), "supercategory": "object"} for k, n in enumerate(class_names)))

    @property
    def ids(self) -> np.ndarray:
        """``(C,) int64``: the category id of each class index."""
        return np.asarray([c["id"] for c in self.categories], np.int64)

    def entries(self) -> list[dict]:
        """Copies of the ``categories`` entries, for a JSON to write."""
        return [dict(c) for c in self.categories]

    def to_ids(self, classes: np.ndarray) -> np.ndarray:
        """``(N,) int64`` category ids of ``(N,)`` class indices 0..C-1."""
        return self.ids[np.asarray(classes, np.int64)]

    @cached_property
    def _index(self) -> dict[int, int]:
        return {int(c): k for k, c in enumerate(self.ids)}

    def class_of(self, category_id) -> int | None:
        """The class index of ``category_id``, or None when it is none of the dataset's."""
        return self._index.get(int(category_id))

    def describe(self) -> str:
        """``1..C`` for numbered ids, else the first ids (``ids 3, 17, 44, 90``), for errors."""
        ids = self.ids
        if np.array_equal(ids, np.arange(1, len(ids) + 1)):
            return f"1..{len(ids)}"
        return "ids " + ", ".join(str(int(c)) for c in ids[:8]) + (", ..." if len(ids) > 8 else "")
