"""EXIF orientation: one rule for every image reader.

A photo whose EXIF ``Orientation`` tag (0x0112) is 2..8 is used the way it is displayed: its
pixels are transposed as PIL's ``ImageOps.exif_transpose`` and detectron2's ``read_image`` do,
and its size is the displayed size (width and height swapped for orientations 5..8). Images,
masks and the sizes read from image headers all follow it, so a rotated phone photo gives
masks, cues and stores of one shape. A size written in an annotation (VOC ``<size>``, COCO
``width``/``height``) must be the displayed size too, as for COCO's own rotated images.

OpenCV applies the tag to JPEGs only (and not on every version): it is told to ignore it, and
the rule here is applied to every format.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation 1..8 of an opened PIL image (1 when absent or not a valid value)."""
    try:
        o = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: PIL shows the image unrotated, so do we
        return 1
    return o if isinstance(o, int) and 1 <= o <= 8 else 1


def file_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation of the image file ``path`` (header only; 1 when unreadable)."""
    try:
        with Image.open(path) as im:
            return exif_orientation(im)
    except Exception:
        return 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """``arr`` ``(H, W, ...)`` as displayed under EXIF ``orientation`` (PIL's
    ``exif_transpose``): ``(W, H, ...)`` for 5..8. Returns a contiguous array."""
    ops = {1: lambda a: a,
           2: lambda a: a[:, ::-1],                       # mirror left-right
           3: lambda a: a[::-1, ::-1],                    # rotate 180
           4: lambda a: a[::-1],                          # mirror top-bottom
           5: lambda a: a.swapaxes(0, 1),                 # transpose
           6: lambda a: a[::-1].swapaxes(0, 1),           # rotate 90 clockwise
           7: lambda a: a[::-1, ::-1].swapaxes(0, 1),     # transverse
           8: lambda a: a[:, ::-1].swapaxes(0, 1)}        # rotate 90 counter-clockwise
    return np.ascontiguousarray(ops.get(orientation, ops[1])(arr))


def displayed_size(size_wh: tuple[int, int], orientation: int) -> tuple[int, int]:
    """``(width, height)`` as displayed: swapped for orientations 5..8."""
    w, h = size_wh
    return (h, w) if orientation >= 5 else (w, h)
