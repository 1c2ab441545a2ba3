"""PASCAL VOC2012 reader.

Layout under the root::

    JPEGImages/<id>.jpg
    Annotations/<id>.xml                      size + object names (image-level labels)
    ImageSets/Segmentation/<split>.txt        one id per line
    SegmentationClass/<id>.png                palette PNG: 0 background, k + 1 class k, 255 void
    SegmentationObject/<id>.png               palette PNG: 0 none, n instance n, 255 void
    class_names.txt                           optional, one class per line (default: 20 VOC)
    points/<id>.txt                           optional GT points ``x y cls conf``

Image-level labels come from the XML objects, or from a label file in the official BESTIE
format (``name c1 c2 ...``, 0-based class indices, e.g. ``train_cls.txt``) when one is given.
A label file also *defines the images*: its lines, in file order, are the split (train_aug's
10,582 images), and ``ImageSets/Segmentation/<split>.txt`` (1,464 lines in stock VOC) is not
read. Then no XML is needed (train_aug images have neither XML nor SegmentationObject).
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.constants import MAX_SIDE, VOID
from ..core.errors import BestieError
from ..core.fileio import read_index_png
from ..core.orientation import displayed_size, exif_orientation
from .base import VOC_CLASSES, Dataset, GtInstances, Record, turn_hint



def _read_text(path: Path, what: str) -> list[str]:
    """The lines of a UTF-8 text file; an unreadable or binary file is a BestieError."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise BestieError(f"{what} is not UTF-8 text", path) from None
    except OSError as e:
        raise BestieError(f"cannot read {what} ({e.strerror})", path) from None


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names, one per line in index order (blank lines skipped); duplicates refused."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise BestieError(f"cannot read class names ({e})", path) from None
    if not names:
        raise BestieError("no class names", path)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise BestieError(f"duplicate class names: {', '.join(dup)}", path)
    if len(names) > 254:
        raise BestieError(f"{len(names)} classes: VOC masks hold at most 254", path)
    return names


def read_split(path: str | os.PathLike) -> list[str]:
    """Image ids of a split file: the first token of each non-blank line, as a file stem.

    Lines like ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/...`` give ``2007_000032``.
    """
    path = Path(path)
    if not path.is_file():
        raise BestieError("split file not found", path)
    stems = []
    for line in _read_text(path, "split file"):
        tok = line.split()
        if tok:
            stems.append(Path(tok[0]).stem if ("/" in tok[0] or "." in tok[0]) else tok[0])
    if not stems:
        raise BestieError("split file lists no image", path)
    seen: set[str] = set()
    for s in stems:
        if s in seen:
            raise BestieError(f"image {s} is listed twice", path)
        seen.add(s)
    return stems


def read_label_file(path: str | os.PathLike, num_classes: int) -> dict[str, np.ndarray]:
    """Image-level labels in the official BESTIE format: ``name c1 c2 ...`` per line.

    ``name`` is an image id or an image file name (its stem is used); ``c*`` are 0-based class
    indices. Returns ``{image_id: (C,) bool}`` in file order; an image listed twice is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise BestieError("label file not found", path)
    out: dict[str, np.ndarray] = {}
    for n, line in enumerate(_read_text(path, "label file"), start=1):
        tok = line.split()
        if not tok:
            continue
        try:
            idx = np.array([int(t) for t in tok[1:]], np.int64)
        except ValueError:
            raise BestieError(f"line {n}: class indices must be integers: {line.strip()!r}", path) from None
        if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
            raise BestieError(f"line {n}: class index out of range 0..{num_classes - 1}: "
                              f"{line.strip()!r}", path)
        lab = np.zeros(num_classes, bool)
        lab[idx] = True
        stem = Path(tok[0]).stem
        if stem in out:
            raise BestieError(f"line {n}: image {stem} is listed twice", path)
        out[stem] = lab
    return out


def _image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` as displayed (EXIF orientation applied) from the image header only
    (PIL opens lazily, no decode)."""
    try:
        with Image.open(path) as im:
            w, h = displayed_size(im.size, exif_orientation(im))
    except Exception as e:
        raise BestieError(f"cannot read image header ({type(e).__name__})", path) from None
    return h, w


def parse_annotation(path: Path, class_index: dict[str, int]) -> tuple[np.ndarray, int, int]:
    """Labels ``(C,) bool`` and ``height, width`` (0 when absent) from a VOC XML file."""
    if not path.is_file():
        raise BestieError("annotation not found (give a label file with --labels)", path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise BestieError(f"malformed XML ({e})", path) from None
    labels = np.zeros(len(class_index), bool)
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in class_index:
            raise BestieError(f"unknown class {name!r} (not in the class list)", path)
        labels[class_index[name]] = True
    h, w = _parse_size(root)
    if h is None:
        raise BestieError("malformed <size> (height and width must be whole numbers of pixels, "
                          f"at most {MAX_SIDE})", path)
    return labels, h, w


#: Largest image side accepted from an annotation (the JPEG limit); beyond it a typo.


def _parse_size(root) -> tuple[int | None, int | None]:
    """``(height, width)`` of ``<size>``; ``(0, 0)`` when absent, ``(None, None)`` when malformed."""
    try:
        h = float(root.findtext("size/height") or 0)
        w = float(root.findtext("size/width") or 0)
    except ValueError:
        return None, None
    if not all(math.isfinite(v) and v == int(v) and 0 <= v <= MAX_SIDE for v in (h, w)):
        return None, None
    return int(h), int(w)


@dataclass
class VocDataset(Dataset):
    """A VOC2012-layout split. ``points_dir`` is ``root/points`` when it exists, else None."""

    size_source = "its annotation"

    def size_error(self, rec: Record, h: int, w: int) -> BestieError:
        """A record's size comes from its XML ``<size>`` when there is one: name that file."""
        xml = self.root / "Annotations" / f"{rec.image_id}.xml"
        if not xml.is_file():
            return super().size_error(rec, h, w)
        return BestieError(f"<size> says {rec.width}x{rec.height} but the image {Path(rec.file_name).name} is "
                           f"{w}x{h}" + turn_hint(rec, h, w), xml)

    def _png(self, sub: str, rec: Record) -> Path:
        return self.root / sub / f"{rec.image_id}.png"

    def has_gt(self, rec: Record) -> bool:
        return self._png("SegmentationObject", rec).is_file() and self._png("SegmentationClass", rec).is_file()

    def load_gt(self, rec: Record) -> GtInstances:
        """Instances of ``SegmentationObject`` with their class from ``SegmentationClass``.

        Instance ids ``n`` (``0 < n < 255``) in increasing order become ``masks (N, H, W) bool``;
        the class of each is the majority non-background, non-void class-PNG value inside it
        (minus 1). ``void`` is 255 in either PNG and is removed from every mask.
        """
        shape = (rec.height, rec.width)
        # a wrong <size> would show as masks not fitting the image: name the annotation instead
        real = _image_size(Path(rec.file_name))
        if real != shape:
            raise self.size_error(rec, *real)
        obj_path, cls_path = self._png("SegmentationObject", rec), self._png("SegmentationClass", rec)
        obj = read_index_png(obj_path, shape)
        cls = read_index_png(cls_path, shape)
        bad = (cls > self.num_classes) & (cls != VOID)
        if bad.any():
            raise BestieError(f"class index {int(cls[bad].max())} above the class count "
                              f"{self.num_classes}", cls_path)
        void = (obj == VOID) | (cls == VOID)
        ids = np.unique(obj)
        ids = ids[(ids > 0) & (ids != VOID)]
        lut = np.zeros(256, np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        inst = lut[obj]  # (H, W): 0 none, i + 1 for the i-th id
        inst[void] = 0
        n = ids.size
        fg = (inst > 0) & (cls > 0)
        counts = np.bincount(inst[fg] * 256 + cls[fg], minlength=(n + 1) * 256).reshape(n + 1, 256)[1:]
        if n and (counts.sum(1) == 0).any():
            k = int(ids[np.flatnonzero(counts.sum(1) == 0)[0]])
            raise BestieError(f"instance {k} has no class in {cls_path.name}", obj_path)
        classes = (counts.argmax(1) - 1).astype(np.int64)
        masks = inst[None] == np.arange(1, n + 1)[:, None, None]
        return GtInstances(masks=masks, classes=classes, crowd=np.zeros(n, bool), void=void)


def open_voc(root: str | os.PathLike, split: str = "train",
             labels: str | os.PathLike | None = None) -> VocDataset:
    """Open split ``split`` of the VOC2012-layout tree at ``root``.

    ``labels``: optional BESTIE label file (``name c1 c2 ...``); when given, it lists the
    split's images (in file order) and their image-level labels, and the split file is not read
    (``split`` only names the result). Heights and widths come from the XML ``<size>`` when
    present, else from the image header.
    """
    root = Path(root)
    if not (root / "JPEGImages").is_dir():
        raise BestieError("not a VOC root (no JPEGImages/ folder)", root)
    names_file = root / "class_names.txt"
    class_names = read_class_names(names_file) if names_file.is_file() else list(VOC_CLASSES)
    class_index = {n: i for i, n in enumerate(class_names)}
    label_map = read_label_file(labels, len(class_names)) if labels is not None else None
    if label_map is not None:
        if not label_map:
            raise BestieError("label file lists no image", labels)
        stems = list(label_map)
    else:
        stems = read_split(root / "ImageSets" / "Segmentation" / f"{split}.txt")

    records = []
    for stem in stems:
        img = root / "JPEGImages" / f"{stem}.jpg"
        if not img.is_file():
            where = f"label file {Path(labels).name}" if label_map is not None else f"split {split!r}"
            raise BestieError(f"image listed in {where} not found", img)
        xml = root / "Annotations" / f"{stem}.xml"
        h = w = 0
        if label_map is not None:
            lab = label_map[stem]
            if xml.is_file():
                _, h, w = _xml_size(xml)
        else:
            lab, h, w = parse_annotation(xml, class_index)
        if h <= 0 or w <= 0:
            h, w = _image_size(img)
        records.append(Record(image_id=stem, file_name=str(img.resolve()), height=h, width=w,
                              labels=lab))
    points = root / "points"
    extra = {"labels_file": None if labels is None else Path(labels).name}
    return VocDataset(root=root.resolve(), split=split, class_names=class_names, records=records,
                      kind="voc", extra_fingerprint=extra,
                      points_dir=points.resolve() if points.is_dir() else None)


def _xml_size(path: Path) -> tuple[None, int, int]:
    """``(None, height, width)`` from a VOC XML ``<size>`` (0 when absent or malformed)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None, 0, 0
    h, w = _parse_size(root)
    return (None, 0, 0) if h is None else (None, h, w)
