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

from .datasets.base import GtInstances

CENTER_MODES = ("centroid", "point")


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


def transfer_instances(wsss: np.ndarray, cues: np.ndarray, labels: np.ndarray, min_area: int = 50,
                       connectivity: int = 8, center: str = "centroid") -> dict:
    """Pseudo instances from a WSSS class mask and instance cues.

    For every class ``c`` with ``labels[c]``: the connected components of ``wsss == c + 1``
    (OpenCV, ``connectivity`` 4 or 8); components with fewer than ``min_area`` pixels are
    dropped; a component is kept when exactly one cue of class ``c`` falls inside it, the cue's
    pixel being ``(int(y), int(x))`` clipped to the image. Cues of classes not in ``labels``
    are ignored, and so is class ``c`` when it has no cue.

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
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
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
    classes, centers, scores = [], [], []
    next_id = 1
    for c in np.flatnonzero(labels):
        sel = np.flatnonzero(cue_cls == c)
        if sel.size == 0:
            continue
        found = _class_instances(wsss == c + 1, rows[sel], cols[sel], connectivity, min_area)
        if found is None:
            continue
        py, px, v, order, area, owner = found
        kk = order.size
        if next_id + kk - 1 > np.iinfo(np.uint16).max:
            raise ValueError("more than 65535 instances in one image")
        glut = np.zeros(area.size + 1, np.uint16)  # candidate number -> instance id (0: too small)
        glut[1 + order] = np.arange(next_id, next_id + kk, dtype=np.uint16)
        next_id += kk
        # Only candidate pixels are written; classes never overlap, so nothing is overwritten.
        out["instances"].reshape(-1)[py * width + px] = glut[v]
        cue_of = sel[owner[order]]
        classes.append(np.full(kk, c, np.int32))
        if center == "centroid":
            cy = np.bincount(v, weights=py, minlength=area.size + 1)[1:][order] / area[order]
            cx = np.bincount(v, weights=px, minlength=area.size + 1)[1:][order] / area[order]
            centers.append(np.stack([cx, cy], 1))
        else:
            centers.append(cues[cue_of, :2])
        scores.append(cues[cue_of, 3])
    if classes:
        out["classes"] = np.concatenate(classes)
        out["centers"] = np.concatenate(centers).astype(np.float32).reshape(-1, 2)
        out["scores"] = np.concatenate(scores).astype(np.float32)
    return out


def _class_instances(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, connectivity: int,
                     min_area: int):
    """The components of one class's mask that hold exactly one of its cues.

    Args:
        mask: ``(H, W) bool`` pixels of the class.
        rows, cols: ``(Q,) int64`` pixels of the class's cues.

    Returns None when no component qualifies, else ``(py, px, v, order, area, owner)``:
    ``py, px`` the image coordinates of the candidates' pixels in raster order and ``v`` the
    candidate number ``1..k`` of each; ``order`` the candidates kept (area ``>= min_area``) in
    the raster order of their first pixel, which is canonical where OpenCV's label order
    depends on its algorithm and thread count; ``area (k,)``; ``owner (k,)`` the index (into
    ``rows``) of each candidate's one cue.
    """
    ys_in = np.flatnonzero(mask.any(1))
    if ys_in.size == 0:
        return None
    xs_in = np.flatnonzero(mask.any(0))
    y0, y1, x0, x1 = ys_in[0], ys_in[-1] + 1, xs_in[0], xs_in[-1] + 1
    h, w = y1 - y0, x1 - x0
    # Label the class's bounding box only (components never leave it). Plain
    # connectedComponents: OpenCV's "WithStats" variant is several times slower, and the
    # few numbers needed come from bincounts below.
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8)
    n, comp = cv2.connectedComponents(crop, connectivity=connectivity, ltype=cv2.CV_32S)
    cr, cc = rows - y0, cols - x0
    inside = (cr >= 0) & (cr < h) & (cc >= 0) & (cc < w)
    hit = np.zeros(rows.size, np.int64)  # component under each cue (0 = none)
    hit[inside] = comp[cr[inside], cc[inside]]
    count = np.bincount(hit, minlength=n)
    count[0] = 0
    cand = np.flatnonzero(count == 1)
    if cand.size == 0:
        return None
    owner = np.full(n, -1, np.int64)  # one hit: a unique owner
    owner[hit] = np.arange(rows.size)
    k = cand.size
    # Pixels of the candidates, in raster order of the crop, with their candidate number 1..k.
    lut = np.zeros(n, np.int32)
    lut[cand] = np.arange(1, k + 1, dtype=np.int32)
    fg = np.flatnonzero(crop)
    v = lut[comp.ravel()[fg]]
    keep = v > 0
    nz, v = fg[keep], v[keep]
    area = np.bincount(v, minlength=k + 1)[1:]
    # Runs of equal labels in raster order; the first run of each label holds its first pixel.
    starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
    first_run = np.argmax(v[starts][:, None] == np.arange(1, k + 1)[None, :], axis=0)
    order = np.argsort(nz[starts[first_run]], kind="stable")
    order = order[area[order] >= min_area]
    if order.size == 0:
        return None
    py, px = np.divmod(nz, w)
    return py + y0, px + x0, v, order, area, owner[cand]


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
