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
"""

from __future__ import annotations

import cv2
import numpy as np

#: Value of an uncertain pixel in a seed mask.
UNCERTAIN = 255

RELATIONS = ("class", "instance")


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
