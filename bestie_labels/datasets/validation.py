"""Which images a training command validates on: never its own training images.

A VOC tree (or a folder with a ``split`` column) validates on another split of the same data
(``--val-split val``). A COCO JSON or a folder without splits has nothing else inside it, so
validation takes another dataset (``--val-data instances_val2017.json``); without one there is
no validation, and the run says so rather than report training images as "val".
"""

from __future__ import annotations

import os

from ..core.errors import BestieError
from . import open_dataset
from .base import Dataset, check_disjoint


def open_validation(train: Dataset, data: str | os.PathLike, val_split: str | None, *,
                    explicit: bool = False, data_format: str | None = None,
                    images: str | os.PathLike | None = None,
                    val_data: str | os.PathLike | None = None,
                    val_images: str | os.PathLike | None = None) -> tuple[Dataset | None, str | None]:
    """The validation dataset of a run on ``train``, and a warning line when there is none.

    Args:
        train: the training dataset (opened from ``data``).
        data, data_format, images: how ``train`` was opened.
        val_split: split of ``data`` to validate on; ``None`` or ``"none"`` for no validation.
        explicit: the user named ``val_split`` (an error then refuses, instead of a warning).
        val_data, val_images: another dataset to validate on (a COCO val JSON and its images);
            it takes precedence over ``val_split``.

    Returns ``(dataset or None, warning or None)``. Raises BestieError when the validation data
    shares images with ``train``, or when an explicit choice cannot be honoured.
    """
    if val_data:
        split = val_split if val_split and val_split.lower() != "none" else "val"
        val = open_dataset(val_data, split=split, images=val_images)
        check_disjoint(train, val)
        return val, None
    if not val_split or val_split.lower() == "none":
        return None, None
    if not train.has_splits:
        what = "a COCO JSON" if train.kind == "coco" else "a folder without a split column"
        msg = f"{what} has no splits, so there is no validation split '{val_split}'; pass --val-data"
        if explicit:
            raise BestieError(msg, train.root)
        return None, f"no validation ({msg})"
    try:
        val = open_dataset(data, split=val_split, data_format=data_format, images=images)
    except BestieError as e:
        if explicit:
            raise
        return None, f"no validation ({e})"
    check_disjoint(train, val)
    return val, None
