"""Writes images and masks as a PASCAL VOC2012 tree (the demo data and test fixtures use it).

Layout: ``JPEGImages/<stem>.jpg``, ``SegmentationClass/<stem>.png`` and
``SegmentationObject/<stem>.png`` (palette PNGs), ``Annotations/<stem>.xml`` (size, one object
per instance with its box), ``ImageSets/Segmentation/<split>.txt`` and, for non-VOC classes,
``class_names.txt``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from ..core.constants import VOID
from ..datasets.base import VOC_CLASSES
from ..core.errors import BestieError
from ..core.fileio import write_index_png


def instance_boxes(object_mask: np.ndarray, num: int) -> np.ndarray:
    """Bounding boxes of instances ``1..num`` of an ``(H, W)`` instance PNG.

    Returns ``(num, 4) int64`` VOC boxes ``xmin, ymin, xmax, ymax`` (1-based, inclusive);
    an instance with no pixel gets ``0, 0, 0, 0``.
    """
    boxes = np.zeros((num, 4), np.int64)
    for n in range(1, num + 1):
        ys, xs = np.nonzero(object_mask == n)
        if ys.size:
            boxes[n - 1] = (xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1)
    return boxes


def instance_classes(class_mask: np.ndarray, object_mask: np.ndarray, num: int) -> np.ndarray:
    """0-based class of instances ``1..num``: the majority class-mask value inside each.

    ``class_mask`` and ``object_mask`` are ``(H, W) uint8`` VOC PNG arrays. Returns ``(num,)
    int64``; -1 for an instance with no pixel or whose pixels are all background/void.
    """
    inst = object_mask.astype(np.int64).ravel()
    cls = class_mask.astype(np.int64).ravel()
    keep = (inst >= 1) & (inst <= num) & (cls >= 1) & (cls != VOID)
    counts = np.zeros((num + 1, 256), np.int64)
    np.add.at(counts, (inst[keep], cls[keep]), 1)
    out = counts[1:].argmax(1) - 1
    out[counts[1:].sum(1) == 0] = -1
    return out


def annotation_xml(stem: str, height: int, width: int, names: Sequence[str],
                   boxes: np.ndarray, folder: str = "VOC2012") -> str:
    """A VOC ``Annotations/<stem>.xml`` text: file name, size and one object per instance."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = f"{stem}.jpg"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(width))
    ET.SubElement(size, "height").text = str(int(height))
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "1"
    for name, box in zip(names, boxes):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        for key, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bb, key).text = str(int(v))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc_tree(
    root: str | os.PathLike,
    stems: Sequence[str],
    images: Sequence[np.ndarray],
    class_masks: Sequence[np.ndarray],
    object_masks: Sequence[np.ndarray],
    class_names: Sequence[str] | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
    jpeg_quality: int = 95,
) -> Path:
    """Write images and masks as a PASCAL VOC2012 tree under ``root``.

    Args:
        stems: image ids (file stems).
        images: ``(H, W, 3) uint8`` RGB per stem, written as ``JPEGImages/<stem>.jpg``.
        class_masks: ``(H, W) uint8`` per stem: 0 background, k + 1 class k, 255 void.
        object_masks: ``(H, W) uint8`` per stem: 0 none, n instance n (1-based), 255 void.
        class_names: written to ``class_names.txt`` when given; when None the 20 VOC classes
            name the XML objects and no ``class_names.txt`` is written.
        splits: ``{split: stems}`` written to ``ImageSets/Segmentation/<split>.txt``;
            default ``{"val": stems}``.

    ``Annotations/<stem>.xml`` gets the size and one object per instance (class = majority
    class-mask value inside it, box from its pixels). Returns ``Path(root)``.
    """
    root = Path(root)
    names_list = list(class_names) if class_names is not None else list(VOC_CLASSES)
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject",
                "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for stem, img, cm, om in zip(stems, images, class_masks, object_masks, strict=True):
        img = np.asarray(img, np.uint8)
        h, w = img.shape[:2]
        if cm.shape != (h, w) or om.shape != (h, w):
            raise ValueError(f"{stem}: masks {cm.shape}, {om.shape} do not match image {(h, w)}")
        ok = cv2.imwrite(str(root / "JPEGImages" / f"{stem}.jpg"),
                         cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise BestieError("cannot write image", root / "JPEGImages" / f"{stem}.jpg")
        write_index_png(root / "SegmentationClass" / f"{stem}.png", cm, atomic=False)
        write_index_png(root / "SegmentationObject" / f"{stem}.png", om, atomic=False)
        ids = om[(om > 0) & (om != VOID)]
        num = int(ids.max()) if ids.size else 0
        cls = instance_classes(cm, om, num)
        present = cls >= 0
        boxes = instance_boxes(om, num)[present]
        names = [names_list[c] for c in cls[present]]
        (root / "Annotations" / f"{stem}.xml").write_text(annotation_xml(stem, h, w, names, boxes))
    if class_names is not None:
        (root / "class_names.txt").write_text("".join(f"{n}\n" for n in names_list))
    for split, members in (splits or {"val": list(stems)}).items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(
            "".join(f"{s}\n" for s in members))
    return root
