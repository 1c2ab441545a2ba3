"""Semantic knowledge transfer (section 3.3 of the paper): WSSS mask + instance cues -> pseudo instances.

Where instances of a class do not touch, semantic and instance segmentation agree. So each
connected component of a class in the WSSS mask is a candidate instance, and it is accepted
when exactly one cue of that class falls inside it (no cue: probably a false positive of the
WSSS; two or more: probably several touching instances that cannot be told apart). Two options
go beyond the paper for data where its cues are the first loss (``report``'s ``lost`` field):
``cueless="keep"`` keeps the components without a cue, ``multi_cue="split"`` splits those with
several between their cues.

Pure functions over numpy arrays; no I/O.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.constants import MIN_AREA
from ..datasets.base import GtInstances
from .components import CONNECTIVITY, check_connectivity, component_map
from .transfer_options import CENTER_MODES, CUELESS_MODES, MULTI_CUE_MODES


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


def instance_centroids(instances: np.ndarray, num: int) -> np.ndarray:
    """``(num, 2) float64`` (x, y) mean pixel of each instance ``1..num`` of an ``(H, W)``
    integer map (0: none; ids above ``num`` ignored); ``nan`` for an instance with no pixel.
    Integer sums of absolute coordinates over the integer area: the float64 mean, exactly."""
    flat = np.asarray(instances).reshape(-1)
    on = np.flatnonzero((flat > 0) & (flat <= num))
    ids = flat[on].astype(np.int64)
    ys, xs = np.divmod(on, instances.shape[1])
    area = np.bincount(ids, minlength=num + 1)[1:].astype(np.float64)
    sums = np.stack([np.bincount(ids, weights=xs, minlength=num + 1)[1:],
                     np.bincount(ids, weights=ys, minlength=num + 1)[1:]], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / area[:, None]


def transfer_instances(wsss: np.ndarray, cues: np.ndarray, labels: np.ndarray, min_area: int = MIN_AREA,
                       connectivity: int = CONNECTIVITY, center: str = "centroid", cueless: str = "drop",
                       multi_cue: str = "drop") -> dict:
    """Pseudo instances from a WSSS class mask and instance cues.

    For every class ``c`` with ``labels[c]``: the connected components of ``wsss == c + 1``
    (``connectivity`` 4 or 8, :func:`~.components.component_map`). The cues of class ``c``
    inside a component decide what it gives, a cue's pixel being ``(int(y), int(x))`` clipped
    to the image:

    - exactly one cue: the component is one instance (the paper's transfer);
    - no cue: dropped (``cueless="drop"``, the paper: probably a false positive of the WSSS), or
      one instance with score 0 (``"keep"``: the classifier's peaks missed an object the class
      mask found; the image-level label says the class is present);
    - two or more cues: dropped (``multi_cue="drop"``, the paper: touching instances that cannot
      be told apart), or split (``"split"``): every pixel goes to the nearest of its cues
      (Euclidean, ties to the cue listed first), one instance per cue.

    Instances (whole components or parts) with fewer than ``min_area`` pixels are dropped. Cues
    of classes not in ``labels`` are ignored.

    Args:
        wsss: ``(H, W)`` integer class mask (0 background, ``c + 1`` class c, 255 ignore).
        cues: ``(N, 4) float32`` rows ``x, y, cls, conf`` (cls 0-based).
        labels: ``(C,) bool`` image-level label.
        min_area: smallest instance kept, in pixels.
        connectivity: 4 or 8.
        center: ``"centroid"`` (image-level cues: the instance's centroid) or ``"point"``
            (point supervision: the cue itself; the centroid for a cueless instance).
        cueless: ``"drop"`` or ``"keep"`` (:data:`~.transfer_options.CUELESS_MODES`).
        multi_cue: ``"drop"`` or ``"split"`` (:data:`~.transfer_options.MULTI_CUE_MODES`).

    Returns:
        dict with ``instances (H, W) uint16`` (0 = none, ``m + 1`` = instance m),
        ``classes (M,) int32`` (0-based), ``centers (M, 2) float32`` (x, y) and
        ``scores (M,) float32`` (the confidence of the instance's cue, 0 without one). Instances
        are ordered by class, then by the raster index (row-major) of their first pixel, so the
        result does not depend on OpenCV's labelling algorithm or thread count.
    """
    _check_modes(center, cueless, multi_cue)
    connectivity = check_connectivity(connectivity)
    wsss = np.asarray(wsss)
    if wsss.ndim != 2:
        raise ValueError(f"wsss must be (H, W), got {wsss.shape}")
    height, width = wsss.shape
    cues = np.asarray(cues, np.float32).reshape(-1, 4)
    labels = np.asarray(labels, bool).reshape(-1)
    out = _empty(height, width)
    if cues.shape[0] == 0 and cueless == "drop":
        return out
    comp = component_map(wsss, labels, connectivity)
    n_comp = int(comp.max()) + 1
    if n_comp == 1:
        return out
    comp_cls = np.zeros(n_comp, np.int64)
    comp_cls[comp.ravel()] = wsss.ravel().astype(np.int64) - 1  # id 0 gets junk, never read
    rows, cols = cue_pixels(cues, height, width)
    at = comp[rows, cols]
    mine = (at > 0) & (comp_cls[at] == cues[:, 2].astype(np.int64))
    count = np.bincount(at[mine], minlength=n_comp)
    count[0] = 0
    owner = np.full(n_comp, -1, np.int64)  # where count is 1: the one cue inside
    owner[at[mine]] = np.flatnonzero(mine)
    whole = count == 1
    if cueless == "keep":
        whole |= count == 0
    whole[0] = False
    region = np.where(whole[comp], comp, 0)
    reg_cls, reg_cue = comp_cls, owner
    split = np.flatnonzero(count >= 2) if multi_cue == "split" else np.zeros(0, np.int64)
    if split.size:
        region, reg_cls, reg_cue = _split_components(comp, region, split, at, mine, rows, cols, comp_cls, owner)
    return _instances(region, reg_cls, reg_cue, cues, max(int(min_area), 1), center)


def _check_modes(center: str, cueless: str, multi_cue: str) -> None:
    for name, value, modes in (("center", center, CENTER_MODES), ("cueless", cueless, CUELESS_MODES),
                               ("multi_cue", multi_cue, MULTI_CUE_MODES)):
        if value not in modes:
            raise ValueError(f"{name} must be one of {modes}, got {value!r}")


def _split_components(comp, region, split, at, mine, rows, cols, comp_cls, owner):
    """Split each component in ``split`` between its cues: every pixel to the nearest cue.

    Args:
        comp: ``(H, W) int64`` component ids; region: ``(H, W) int64`` the region ids so far
            (component ids of the whole components), modified.
        split: ``(S,) int64`` ids of the components to split; at, mine: per cue its component
            and whether it counts there; rows, cols: the cue pixels.
        comp_cls, owner: ``(K + 1,)`` class and cue of each component id.

    Returns ``region`` (parts numbered after the components), and the class and cue of every
    region id, ``(R,) int64`` each.
    """
    from scipy import ndimage

    boxes = ndimage.find_objects(comp, max_label=int(comp_cls.size) - 1)
    cls, cue = [comp_cls], [owner]
    nxt = comp_cls.size
    for j in split:
        box = boxes[j - 1]
        sub = comp[box] == j
        ys, xs = np.nonzero(sub)
        ys, xs = ys + box[0].start, xs + box[1].start
        mine_j = np.flatnonzero(mine & (at == j))
        d2 = (ys[:, None] - rows[mine_j][None]) ** 2 + (xs[:, None] - cols[mine_j][None]) ** 2
        region[ys, xs] = nxt + np.argmin(d2, axis=1)
        cls.append(np.full(mine_j.size, comp_cls[j], np.int64))
        cue.append(mine_j)
        nxt += mine_j.size
    return region, np.concatenate(cls), np.concatenate(cue)


def _instances(region: np.ndarray, reg_cls: np.ndarray, reg_cue: np.ndarray, cues: np.ndarray, min_area: int,
               center: str) -> dict:
    """The pseudo instances of a region map.

    Args:
        region: ``(H, W) int64`` region ids (0: none); reg_cls, reg_cue: ``(R,) int64`` the class
            and the cue (-1: none) of every id.
        cues: ``(N, 4) float32``; min_area: at least 1; center: as :func:`transfer_instances`.

    Returns the dict of :func:`transfer_instances`.
    """
    height, width = region.shape
    flat = region.ravel()
    area = np.bincount(flat, minlength=reg_cls.size)
    area[0] = 0
    kept = np.flatnonzero(area >= min_area)
    out = _empty(height, width)
    if kept.size == 0:
        return out
    if kept.size > np.iinfo(np.uint16).max:
        raise ValueError("more than 65535 instances in one image")
    on = np.flatnonzero(flat)
    ids, first_at = np.unique(flat[on], return_index=True)
    first = np.zeros(reg_cls.size, np.int64)
    first[ids] = on[first_at]
    order = kept[np.lexsort((first[kept], reg_cls[kept]))]
    lut = np.zeros(reg_cls.size, np.uint16)
    lut[order] = np.arange(1, order.size + 1)
    out["instances"] = lut[region]
    out["classes"] = reg_cls[order].astype(np.int32)
    centers = instance_centroids(region, reg_cls.size - 1)[order - 1]
    cue = reg_cue[order]
    has = cue >= 0
    if center == "point":
        centers[has] = cues[cue[has], :2]
    out["centers"] = centers.astype(np.float32).reshape(-1, 2)
    out["scores"] = np.where(has, cues[np.maximum(cue, 0), 3] if cues.shape[0] else 0.0, 0.0).astype(np.float32)
    return out


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
        centers = instance_centroids(inst, m).astype(np.float32)
    else:
        centers = _deepest_pixels(inst.astype(np.int32), m)
    return dict(instances=inst.astype(np.uint16),
                classes=np.asarray(gt.classes, np.int64)[keep][present].astype(np.int32),
                centers=centers.reshape(-1, 2),
                scores=np.ones(m, np.float32))
