"""Semantic knowledge transfer (section 3.3 of the paper): WSSS mask + instance cues -> pseudo instances.

Where instances of a class do not touch, semantic and instance segmentation agree. So each
connected component of a class in the WSSS mask is a candidate instance, and it is accepted
when exactly one cue of that class falls inside it (no cue: probably a false positive of the
WSSS; two or more: probably several touching instances that cannot be told apart).

Pure functions over numpy arrays; no I/O.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.constants import MIN_AREA
from ..datasets.base import GtInstances
from .components import CONNECTIVITY, check_connectivity
from .transfer_options import CENTER_MODES


def _empty(height: int, width: int) -> dict:
    return dict(instances=np.zeros((height, width), np.uint16), classes=np.zeros(0, np.int32),
                centers=np.zeros((0, 2), np.float32), scores=np.zeros(0, np.float32))


def cue_pixels(cues: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ``(row, col)`` of each cue: ``(int(y), int(x))`` clipped to the image.

    Returns two ``(N,) int64`` arrays ``rows, cols``.
    """
    cues = np.asarray(cues, np.float32).reshape(-1, 4)
    cols = np.clip(np.trunc(cues[:, 0]), 0, width - 1).astype(np.int64)
    rows = np.clip(np.trunc(cues[:, 1]), 0, height - 1).astype(np.int64)
    return rows, cols


def transfer_instances(wsss: np.ndarray, cues: np.ndarray, labels: np.ndarray, min_area: int = MIN_AREA,
                       connectivity: int = CONNECTIVITY, center: str = "centroid") -> dict:
    """Pseudo instances from a WSSS class mask and instance cues.

    For every class ``c`` with ``labels[c]``: the connected components of ``wsss == c + 1``
    (``connectivity`` 4 or 8, as :func:`~.components.component_map`'s; only those holding a
    cue are flood-filled, so the rest of the mask is never labelled); components with fewer
    than ``min_area`` pixels are dropped; a component is kept when exactly one cue of class
    ``c`` falls inside it, the cue's pixel being ``(int(y), int(x))`` clipped to the image.
    Cues of classes not in ``labels`` are ignored, and so is class ``c`` when it has no cue.

    Args:
        wsss: ``(H, W) uint8`` class mask (0 background, ``c + 1`` class c, 255 ignore).
        cues: ``(N, 4) float32`` rows ``x, y, cls, conf`` (cls 0-based).
        labels: ``(C,) bool`` image-level label.
        min_area: smallest component kept, in pixels.
        connectivity: 4 or 8.
        center: ``"centroid"`` (image-level cues: the component's centroid) or ``"point"``
            (point supervision: the cue itself).

    Returns:
        dict with ``instances (H, W) uint16`` (0 = none, ``m + 1`` = instance m),
        ``classes (M,) int32`` (0-based), ``centers (M, 2) float32`` (x, y) and
        ``scores (M,) float32`` (the confidence of the instance's cue). Instances are ordered
        by class, then by the raster index (row-major) of each component's first pixel, so the
        result does not depend on OpenCV's labelling algorithm or thread count.
    """
    if center not in CENTER_MODES:
        raise ValueError(f"center must be one of {CENTER_MODES}, got {center!r}")
    connectivity = check_connectivity(connectivity)
    wsss = np.asarray(wsss)
    if wsss.ndim != 2:
        raise ValueError(f"wsss must be (H, W), got {wsss.shape}")
    height, width = wsss.shape
    cues = np.asarray(cues, np.float32).reshape(-1, 4)
    labels = np.asarray(labels, bool).reshape(-1)
    out = _empty(height, width)
    if cues.shape[0] == 0:
        return out

    rows, cols = cue_pixels(cues, height, width)
    cue_cls = cues[:, 2].astype(np.int64)
    paint = _class_map(wsss, labels)
    comp_cls, area, boxes = _fill_cue_components(paint, rows, cols, cue_cls, labels, connectivity)
    if comp_cls.size == 0:
        return out
    # Component under each cue, counted only for a component of the cue's own class.
    v = paint[rows, cols].astype(np.int64)
    hit = np.where(v < 0, -v - 1, 0)
    mine = (v < 0) & (comp_cls[hit] == cue_cls)
    count = np.bincount(hit[mine], minlength=comp_cls.size)
    owner = np.full(comp_cls.size, -1, np.int64)  # where count is 1: the one cue inside
    owner[hit[mine]] = np.flatnonzero(mine)
    kept = np.flatnonzero((count == 1) & (area >= min_area))
    if kept.size == 0:
        return out
    if kept.size > np.iinfo(np.uint16).max:
        raise ValueError("more than 65535 instances in one image")
    first, masks, sums = _measure(paint, kept, boxes, width)
    order = np.lexsort((first, comp_cls[kept]))
    for gid, k in enumerate(order, 1):
        # Only the component's pixels are written; components never overlap.
        x, y, w, h = boxes[kept[k]]
        np.copyto(out["instances"][y:y + h, x:x + w], np.uint16(gid), where=masks[k])
    kept, sums = kept[order], sums[order]
    cue_of = owner[kept]
    out["classes"] = comp_cls[kept].astype(np.int32)
    if center == "centroid":
        # Integer sums of absolute coordinates over the int area: the float64 mean, exactly.
        out["centers"] = (sums / area[kept][:, None]).astype(np.float32).reshape(-1, 2)
    else:
        out["centers"] = cues[cue_of, :2].astype(np.float32).reshape(-1, 2)
    out["scores"] = cues[cue_of, 3].astype(np.float32)
    return out


def _class_map(wsss: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(H, W) int32`` copy of the class mask for flood filling: ``c + 1`` where ``wsss == c + 1``,
    never negative (negative values are the components' fill values)."""
    if wsss.dtype in (np.uint8, np.uint16, np.bool_):  # an exact, non-negative cast
        return wsss.astype(np.int32)
    paint = np.zeros(wsss.shape, np.int32)
    for c in np.flatnonzero(labels):
        paint[wsss == c + 1] = c + 1
    return paint


def _fill_cue_components(paint: np.ndarray, rows: np.ndarray, cols: np.ndarray, cue_cls: np.ndarray,
                         labels: np.ndarray, connectivity: int):
    """Flood-fill, in place, every component of a labelled class that holds a cue of the class.

    Only these components can be instances, so the rest of the mask (false positives, small
    fragments) is never labelled. Component ``j`` (numbered in the order found: by class, then
    by cue) is painted ``-(j + 1)`` in ``paint``. One fill per component, not per cue: the cues
    a fill reaches are no longer pending.

    Args:
        paint: ``(H, W) int32`` from :func:`_class_map`, modified.
        rows, cols: ``(N,) int64`` cue pixels; cue_cls: ``(N,) int64`` their classes.
        labels: ``(C,) bool``.

    Returns ``comp_cls (J,) int64`` each component's class, ``area (J,) int64`` its pixel count
    and ``boxes (J, 4) int64`` its bounding box ``x, y, w, h``.
    """
    flags = connectivity | cv2.FLOODFILL_FIXED_RANGE  # exactly the seed's value, i.e. class c
    comp_cls, area, boxes = [], [], []
    for c in np.flatnonzero(labels):
        pending = np.flatnonzero(cue_cls == c)
        while True:
            pending = pending[paint[rows[pending], cols[pending]] == c + 1]
            if pending.size == 0:
                break
            i = pending[0]
            n, _, _, box = cv2.floodFill(paint, None, (int(cols[i]), int(rows[i])), -(len(area) + 1),
                                         0, 0, flags)
            comp_cls.append(c)
            area.append(n)
            boxes.append(box)
    return (np.asarray(comp_cls, np.int64), np.asarray(area, np.int64),
            np.asarray(boxes, np.int64).reshape(-1, 4))


def _measure(paint: np.ndarray, kept: np.ndarray, boxes: np.ndarray, width: int):
    """Per component ``j`` in ``kept`` (filled ``-(j + 1)`` in ``paint``, box ``boxes[j]``):

    ``first (K,) int64`` the raster index of its first pixel (top row of its box, leftmost pixel
    there), which is canonical where a labelling's order is not; ``masks`` a list of ``(h, w)
    bool`` its pixels within its box; ``sums (K, 2) int64`` the sums of its pixels' absolute
    ``x, y``.
    """
    first = np.zeros(kept.size, np.int64)
    sums = np.zeros((kept.size, 2), np.int64)
    masks = []
    for k, j in enumerate(kept):
        x, y, w, h = boxes[j]
        m = paint[y:y + h, x:x + w] == -(j + 1)
        masks.append(m)
        first[k] = y * width + x + int(np.argmax(m[0]))
        sums[k, 0] = np.count_nonzero(m, axis=0) @ np.arange(x, x + w)
        sums[k, 1] = np.count_nonzero(m, axis=1) @ np.arange(y, y + h)
    return first, masks, sums


def _deepest_pixels(instances: np.ndarray, num: int) -> np.ndarray:
    """``(num, 2) float32`` (x, y) of the pixel deepest inside each instance ``1..num``.

    The distance-transform maximum (OpenCV ``DIST_L2``, mask 3; the image border counts as
    outside; the first maximum in raster order), the rule the demo data uses for its GT points.
    Computed on each instance's bounding box padded by one pixel, which gives the same
    distances as on the whole image because any path to a pixel outside the box crosses
    the padding ring. An instance with no pixel gets ``(nan, nan)``.
    """
    pts = np.full((num, 2), np.nan, np.float32)
    boxes = [None] * num
    # find_objects gives each label's bounding slices in one pass.
    from scipy import ndimage

    for n, box in enumerate(ndimage.find_objects(instances, max_label=num)):
        boxes[n] = box
    for n, box in enumerate(boxes):
        if box is None:
            continue
        m = np.pad((instances[box] == n + 1).astype(np.uint8), 1)
        dt = cv2.distanceTransform(m, cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
        pts[n] = (x + box[1].start, y + box[0].start)
    return pts


def gt_to_pseudo(gt: GtInstances, center: str = "centroid") -> dict:
    """GT instances in the pseudo-label format (``--from-gt``: the fully supervised upper bound).

    Crowd instances are left out; void pixels are never part of an instance; where masks
    overlap (COCO) the later instance wins, as in :meth:`GtInstances.semantic`. An instance
    with no visible pixel left is dropped. Instances keep the GT order.

    Args:
        gt: the image's ground truth.
        center: ``"centroid"`` (mean pixel of each instance's visible pixels) or ``"point"``
            (the pixel deepest inside the instance, the rule of the demo data's GT points).

    Returns:
        The dict of :func:`transfer_instances`, with ``scores`` all 1.
    """
    if center not in CENTER_MODES:
        raise ValueError(f"center must be one of {CENTER_MODES}, got {center!r}")
    height, width = gt.void.shape
    keep = np.flatnonzero(~np.asarray(gt.crowd, bool))
    if keep.size == 0:
        return _empty(height, width)
    masks = np.asarray(gt.masks, bool)[keep]
    any_fg = masks.any(0) & ~gt.void
    # Later instances win: index of the last mask covering each pixel.
    last = masks.shape[0] - 1 - np.argmax(masks[::-1], axis=0)
    inst = np.where(any_fg, last + 1, 0).astype(np.int64)

    area = np.bincount(inst.ravel(), minlength=keep.size + 1)[1:]
    present = np.flatnonzero(area > 0)
    # Renumber so ids are 1..M without gaps.
    lut = np.zeros(keep.size + 1, np.int64)
    lut[present + 1] = np.arange(1, present.size + 1)
    inst = lut[inst]
    m = present.size
    if center == "centroid":
        ys, xs = np.indices((height, width))
        flat = inst.ravel()
        area_m = np.bincount(flat, minlength=m + 1)[1:].astype(np.float64)
        cx = np.bincount(flat, weights=xs.ravel(), minlength=m + 1)[1:] / area_m
        cy = np.bincount(flat, weights=ys.ravel(), minlength=m + 1)[1:] / area_m
        centers = np.stack([cx, cy], 1).astype(np.float32)
    else:
        centers = _deepest_pixels(inst.astype(np.int32), m)
    return dict(instances=inst.astype(np.uint16),
                classes=np.asarray(gt.classes, np.int64)[keep][present].astype(np.int32),
                centers=centers.reshape(-1, 2),
                scores=np.ones(m, np.float32))
