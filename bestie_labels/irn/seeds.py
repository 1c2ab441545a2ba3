"""Confident seeds from class activation maps: what the boundary network learns from (IRN step 1).

A pixel is a confident foreground seed of class c when c wins the arg-max over
``[fg_threshold, maps of the labelled classes]`` (its normalised CAM is high), confident
background when every labelled map is below ``bg_threshold``, and uncertain otherwise (IRN:
0.30 / 0.05, each followed by a dense CRF; here without CRF).

:func:`seed_regions` turns the seeds into the region map of
:func:`~bestie_labels.irn.affinity.affinity_labels`: with ``relation="class"`` (IRN) a region is
a class; with ``relation="instance"`` it is one connected component of a class's seeds, so the
boundary network also learns to cut between touching instances of one class whose seeds are
apart (the instance-wise relations BESTIE asks of IRN, section 2 of the paper).
:func:`split_at_peaks` (``relation="peak"``) goes further: a component holding several peaks of
the classifier's PAM maps (the instance cues) is split between them by a watershed of the PAM
map, with an uncertain band along the split, so touching instances whose CAM seeds merged are
also cut apart.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core.constants import VOID

#: Value of an uncertain pixel in a seed mask: the void value (the random walk fills it in).
UNCERTAIN = VOID

RELATIONS = ("class", "instance", "peak")


def cam_seeds(maps: np.ndarray, labels: np.ndarray, fg_threshold: float, bg_threshold: float) -> np.ndarray:
    """Seed mask from normalised activation maps.

    Args:
        maps: ``(C, H, W)`` float in about [0, 1].
        labels: ``(C,) bool`` image-level label; only these classes can be seeds.
        fg_threshold: a pixel is a seed of the arg-max class when its map is above this.
        bg_threshold: a pixel is background when every labelled map is at or below this.

    Returns:
        ``(H, W) uint8``: 0 background, ``k + 1`` seed of class k, :data:`UNCERTAIN` (255).
    """
    maps = np.asarray(maps, np.float32)
    labels = np.asarray(labels, bool)
    h, w = maps.shape[1:]
    cls = np.flatnonzero(labels)
    if cls.size == 0:
        return np.zeros((h, w), np.uint8)
    m = maps[cls]
    best = m.max(0)
    out = np.full((h, w), UNCERTAIN, np.uint8)
    out[best <= bg_threshold] = 0
    fg = best > fg_threshold
    out[fg] = (cls[np.argmax(m, axis=0)] + 1).astype(np.uint8)[fg]
    return out


def seed_regions(seeds: np.ndarray, relation: str = "instance", connectivity: int = 8) -> np.ndarray:
    """Region map for the affinity labels.

    Args:
        seeds: ``(H, W) uint8`` from :func:`cam_seeds`.
        relation: ``"class"``: region = class + 1; ``"instance"``: each connected component of
            each class's seeds is its own region (numbered 1, 2, ... class by class).
        connectivity: 4 or 8 for the components.

    Returns:
        ``(H, W) int32``: 0 background, ``> 0`` region, -1 uncertain.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    seeds = np.asarray(seeds, np.uint8)
    out = seeds.astype(np.int32)
    out[seeds == UNCERTAIN] = -1
    if relation == "class":
        return out
    next_id = 1
    for v in np.unique(seeds):
        if v in (0, UNCERTAIN):
            continue
        n, comp = cv2.connectedComponents((seeds == v).view(np.uint8), connectivity=connectivity,
                                          ltype=cv2.CV_32S)
        sel = comp > 0
        out[sel] = comp[sel] + next_id - 1
        next_id += n - 1
    return out


def split_at_peaks(regions: np.ndarray, peaks: np.ndarray, pam_maps: np.ndarray, band: int = 2) -> np.ndarray:
    """Split the regions of :func:`seed_regions` (``"instance"``) that hold several peaks.

    Args:
        regions: ``(H, W) int32`` (0 background, > 0 region, -1 uncertain).
        peaks: ``(N, 4) float32`` rows ``x, y, cls, conf`` (e.g. PAM peaks, as ``cues``).
        pam_maps: ``(C, H, W)`` float maps the peaks come from.
        band: the watershed line between two parts is widened to ``2 * band + 1`` pixels of
            uncertain (-1): which side its pixels belong to is not known.

    Returns:
        ``(H, W) int32``: every region with ``k >= 2`` peaks of one class inside becomes ``k``
        regions (new numbers above the existing ones), one per peak; others unchanged.
    """
    from .watershed import watershed_split

    out = regions.copy()
    h, w = regions.shape
    peaks = np.asarray(peaks, np.float32).reshape(-1, 4)
    xs = np.clip(peaks[:, 0].astype(np.int64), 0, w - 1)
    ys = np.clip(peaks[:, 1].astype(np.int64), 0, h - 1)
    under = regions[ys, xs]
    next_id = int(max(regions.max(), 0)) + 1
    for r in np.unique(under[under > 0]):
        sel = np.flatnonzero(under == r)
        cls = peaks[sel, 2].astype(np.int64)
        c = np.bincount(cls).argmax()
        sel = sel[cls == c]
        if sel.size < 2:
            continue
        region = regions == r
        markers = np.zeros((h, w), np.int32)
        markers[ys[sel], xs[sel]] = np.arange(1, sel.size + 1)
        parts = watershed_split(-np.asarray(pam_maps[c], np.float32), markers, region)
        line = region & (parts == 0)
        if band > 0:
            k = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
            line = cv2.dilate(line.view(np.uint8), k).astype(bool) & region
        out[region] = parts[region] + next_id - 1
        out[line] = -1
        next_id += sel.size
    return out
