"""Checks of a COCO instances JSON that pycocotools does not make, run once when it is opened.

pycocotools turns a polygon into a mask without looking at its numbers: a NaN, an Infinity or a
coordinate like 1e12 makes it allocate without bound (the kernel kills the process) or crash.
Every polygon is therefore checked here, as the RLE segmentations are in :mod:`.coco`: one that
is not a list of finite numbers near its image is refused. A polygon of fewer than 3 points or an
odd count of numbers (pycocotools would read 4 numbers as a box) is dropped, and an annotation
left without a polygon is skipped, with one warning per file, as detectron2's ``load_coco_json``
does: real exports hold a few such degenerate outlines, and one of them must not refuse a
dataset. So are the fields whose wrong values pycocotools and the evaluation accept silently:

* ``iscrowd`` is 0 or 1 (``"yes"`` would count as a crowd region);
* annotation ids are integers and unique (results and GT are matched by id);
* a ``file_name`` is relative and stays inside the image folder (no absolute path, no ``..``);
* the image list is not empty (a VOC split listing no image is refused too).

A detection-only image (an annotation of it has a box but no ``segmentation``, or an empty one)
has no complete instance masks: its unmasked object would be trained and scored as background.
It is skipped with its annotations, and one warning names it (:func:`detection_only_images`).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from ..core.errors import BestieError

#: A polygon may stray outside its image (annotation tools clip late), by at most this many
#: image sizes on each side; beyond that it is a corrupt number, not a vertex.
POLY_SLACK = 1.0


def is_int(v) -> bool:
    """A JSON integer (``True`` is no id)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def polygon_problem(seg: list, h: int, w: int) -> str | None:
    """What is wrong with a polygon segmentation (``[[x0, y0, x1, y1, ...], ...]``) of an image
    of ``h x w`` px that no reader can mend (a value that is not a finite number near the image),
    or None. Short or odd polygons are :func:`valid_polygons`' business."""
    for poly in seg:
        if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
            return "polygon is not a list of numbers"
        bad = next((v for v in poly if not math.isfinite(v)), None)
        if bad is not None:
            return f"polygon has a non-finite coordinate ({bad})"
        if not poly:
            continue
        xs, ys = poly[0::2], poly[1::2]
        lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
        if (lo_x < -POLY_SLACK * w or hi_x > (1 + POLY_SLACK) * w or lo_y < -POLY_SLACK * h
                or hi_y > (1 + POLY_SLACK) * h):
            far = max((lo_x, hi_x, lo_y, hi_y), key=abs)
            return f"polygon coordinate {far:g} is far outside the {w}x{h} image"
    return None


def valid_polygons(seg: list) -> list:
    """The polygons of ``seg`` that outline an area: an even count of at least 6 numbers."""
    return [poly for poly in seg if len(poly) >= 6 and len(poly) % 2 == 0]


def file_name_problem(name: str, field: str = "file_name", folder: str = "--images") -> str | None:
    """What is wrong with an image name ``name`` given relative to an image folder (COCO
    ``file_name``, the folder dataset's ``image`` column), or None: an absolute path, or one that
    leaves the folder with ``..`` (the inputs a command protects are the files inside it)."""
    if os.path.isabs(name):
        return f"{field} {name!r} is an absolute path (give it relative to {folder})"
    if os.path.normpath(name).split(os.sep)[0] == os.pardir:
        return f"{field} {name!r} leaves the image folder (..)"
    return None


def check_annotations(data: dict, json_path: Path) -> None:
    """Refuse, in one line naming ``json_path`` and the image or annotation, what the module
    docstring lists. ``data`` has passed :func:`.coco._check_layout`."""
    if not data["images"]:
        raise BestieError("lists no image", json_path)
    _skip_detection_only(data, json_path)
    sizes = {}
    for im in data["images"]:
        problem = file_name_problem(im["file_name"])
        if problem:
            raise BestieError(f"image {im['id']}: {problem}", json_path)
        sizes[im["id"]] = (im["height"], im["width"])
    seen: set[int] = set()
    dropped, empty = 0, []
    for ann in data["annotations"]:
        aid = ann.get("id")
        if not is_int(aid):
            raise BestieError(f"annotation id {aid!r:.40} is not an integer", json_path)
        if aid in seen:
            raise BestieError(f"annotation id {aid} is used twice", json_path)
        seen.add(aid)
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise BestieError(f"annotation {aid}: iscrowd must be 0 or 1, got {crowd!r:.40}", json_path)
        seg = ann.get("segmentation")
        iid = ann.get("image_id")
        if isinstance(seg, list) and isinstance(iid, int) and iid in sizes:
            problem = polygon_problem(seg, *sizes[ann["image_id"]])
            if problem:
                raise BestieError(f"annotation {aid}: {problem}", json_path)
            ann["segmentation"] = valid_polygons(seg)
            dropped += len(seg) - len(ann["segmentation"])
            if not ann["segmentation"]:
                empty.append(aid)
    _skip_degenerate(data, json_path, dropped, empty)


def _skip_degenerate(data: dict, json_path: Path, dropped: int, empty: list[int]) -> None:
    """Drop the annotations in ``empty`` (no polygon left) from ``data``, and say so once."""
    if not dropped and not empty:
        return
    gone = set(empty)
    data["annotations"] = [a for a in data["annotations"] if a.get("id") not in gone]
    first = f" (first: annotation {empty[0]})" if empty else ""
    warnings.warn(f"{json_path}: dropped {dropped} polygon(s) of fewer than 3 points or an odd number count; "
                  f"{len(empty)} annotation(s) left without a polygon are skipped{first}", stacklevel=3)


def _has_no_mask(ann: dict) -> bool:
    seg = ann.get("segmentation")
    return seg is None or (isinstance(seg, (list, dict)) and len(seg) == 0)


def detection_only_images(data: dict) -> list:
    """The ids of the images of a COCO instances dict that have an annotation without a mask
    (no ``segmentation`` key, ``null``, ``[]`` or ``{}``), in the JSON's image order."""
    # a bad image_id (a string, an object) is the layout checks' business, not this one's
    no_mask = {a.get("image_id") for a in data["annotations"] if _has_no_mask(a) and is_int(a.get("image_id"))}
    return [im["id"] for im in data["images"] if im["id"] in no_mask]


def _skip_detection_only(data: dict, json_path: Path) -> None:
    """Take the :func:`detection_only_images` out of ``data`` (images and annotations) and warn
    once, naming the first of them; refuse when no image is left."""
    skip = detection_only_images(data)
    if not skip:
        return
    gone = set(skip)
    first = next(im for im in data["images"] if im["id"] == skip[0])
    data["images"] = [im for im in data["images"] if im["id"] not in gone]
    data["annotations"] = [a for a in data["annotations"] if not (is_int(a.get("image_id")) and a["image_id"] in gone)]
    more = f" and {len(skip) - 1} more" if len(skip) > 1 else ""
    if not data["images"]:
        raise BestieError(f"every image is detection-only (an annotation without segmentation), e.g. image "
                          f"{skip[0]} ({first['file_name']}): instance masks are needed", json_path)
    warnings.warn(f"{json_path}: skipped {len(skip)} detection-only image(s) (an annotation without a mask): "
                  f"image {skip[0]} ({first['file_name']}){more}", stacklevel=3)
