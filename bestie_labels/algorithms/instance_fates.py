"""Where each GT instance is lost on its way to a pseudo instance (``report``'s ``lost`` field).

Image-level BESTIE turns a GT instance into a pseudo instance only when every stage lets it
through: a cue of its class falls inside it, the WSSS class mask covers it, its WSSS component
holds exactly that one cue, and the component's mask matches it. :func:`instance_fates` names,
for every GT instance of one image, the first stage that lost it; the fates are tested in the
order of :data:`FATES`, and the first that holds is the instance's:

``kept``
    a pseudo instance matches it (IoU >= 0.5, the greedy matching of ``report``,
    :func:`bestie_labels.algorithms.matching.matched_gt`).
``no_cue``
    no cue of its class lies inside its (visible) mask; the cue's pixel is ``(int(y), int(x))``,
    the rule of the transfer.
``wsss_missed``
    the WSSS class mask of its class covers less than half of its pixels, or covers none of
    the pixels of its own cues. Why one half: a pseudo instance is a part of the class mask, and
    IoU >= 0.5 needs an intersection of at least half the GT area (IoU <= |P & G| / |G|), so
    below that coverage no transfer could keep the instance; a class mask that misses every cue
    of the instance leaves the transfer nothing to start from.
``merged``
    every WSSS component (of its class, the transfer's connectivity) under its cues holds two
    or more cues of its class: the transfer refuses such components (touching instances the
    class mask cannot tell apart, or two peaks on one object) unless it splits them
    (``multi_cue="split"``); a split that gives the instance a matching part makes it ``kept``.
``poor_mask``
    it reached the transfer (a component under one of its cues holds that cue alone) but no
    pseudo instance matches it: the component leaks into the background or into a neighbour
    without a cue, is smaller than the transfer's ``min_area``, or its pseudo instance matched
    another GT instance.

Crowd instances are neither counted nor given a fate. Pure numpy/OpenCV; no I/O.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..datasets.base import GtInstances
from .knowledge_transfer import cue_pixels
from .components import component_map
from .matching import matched_gt

#: The fates, in the order they are tested.
FATES = ("kept", "no_cue", "wsss_missed", "merged", "poor_mask")
KEPT, NO_CUE, WSSS_MISSED, MERGED, POOR_MASK = range(len(FATES))
#: Least share of a GT instance's pixels the class mask must cover (see ``wsss_missed``).
MIN_COVER = 0.5


def _components(wsss: np.ndarray, classes: np.ndarray, connectivity: int) -> np.ndarray:
    """``(H, W) int64`` ids of the connected components of ``wsss == c + 1`` for every class c in
    ``classes``, numbered 1.. over all of them (0: none of these classes): :func:`.components.component_map`."""
    classes = np.unique(np.asarray(classes, np.int64))
    labels = np.zeros(int(classes.max()) + 1 if classes.size else 0, bool)
    labels[classes] = True
    return component_map(wsss, labels, connectivity)


def _cues_inside(gt: GtInstances, cues: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``inside (N, K) bool`` (cue k lies inside GT instance i and is of its class), the cue
    pixels ``rows, cols (K,) int64`` and the cue classes ``(K,) int64``."""
    h, w = np.asarray(gt.void).shape
    cues = np.asarray(cues, np.float32).reshape(-1, 4)
    rows, cols = cue_pixels(cues, h, w)
    c_cls = cues[:, 2].astype(np.int64)
    g_cls = np.asarray(gt.classes, np.int64).reshape(-1)
    inside = np.asarray(gt.masks, bool)[:, rows, cols] & (g_cls[:, None] == c_cls[None, :])
    return inside, rows, cols, c_cls


def cue_hits(gt: GtInstances, cues: np.ndarray) -> np.ndarray:
    """``(N,) bool``: GT instance i holds a cue of its class (``(K, 4)`` rows ``x, y, cls, conf``,
    pixel ``(int(y), int(x))``); False for crowd instances. The cue quality's true positives:
    unlike ``fate != no_cue``, an instance ``kept`` by a pseudo instance whose cue lies in a
    neighbour does not count."""
    if np.asarray(gt.classes).size == 0:
        return np.zeros(0, bool)
    return _cues_inside(gt, cues)[0].any(1) & ~np.asarray(gt.crowd, bool).reshape(-1)


def instance_fates(gt: GtInstances, cues: np.ndarray, wsss: np.ndarray, pseudo: dict, iou_thr: float = 0.5,
                   connectivity: int = 8, min_cover: float = MIN_COVER) -> np.ndarray:
    """The fate of every GT instance of one image.

    Args:
        gt: the image's GT (``masks (N, H, W) bool``, ``classes (N,)``, ``crowd (N,)``).
        cues: ``(K, 4) float32`` rows ``x, y, cls, conf`` (the cues store's points).
        wsss: ``(H, W) uint8`` class mask (0 background, ``c + 1`` class c, 255 ignore).
        pseudo: ``instances (H, W)``, ``classes (M,)``, ``scores (M,)`` (the pseudo store's image).
        iou_thr: the match threshold of ``kept``.
        connectivity: 4 or 8, the transfer's.
        min_cover: the coverage below which the WSSS missed an instance.

    Returns:
        ``(N,) int64`` indices into :data:`FATES`; ``-1`` for crowd instances.
    """
    masks = np.asarray(gt.masks, bool)
    g_cls = np.asarray(gt.classes, np.int64).reshape(-1)
    n = g_cls.size
    fate = np.full(n, -1, np.int64)
    keep = ~np.asarray(gt.crowd, bool).reshape(-1)
    if n == 0:
        return fate
    inside, rows, cols, c_cls = _cues_inside(gt, cues)
    wsss = np.asarray(wsss)
    own = wsss[None] == (g_cls + 1)[:, None, None]  # (N, H, W) the class mask of each instance's class
    area = masks.reshape(n, -1).sum(1)
    cover = (masks & own).reshape(n, -1).sum(1) / np.maximum(area, 1)
    # Cue k on a pixel of its own class in the class mask, and the component there.
    comp = _components(wsss, g_cls[keep], connectivity)
    on_class = wsss[rows, cols].astype(np.int64) == c_cls + 1
    cue_comp = np.where(on_class, comp[rows, cols], 0)
    per_comp = np.bincount(cue_comp, minlength=int(comp.max()) + 1)
    per_comp[0] = 0
    usable = inside & on_class[None, :]  # (N, K) its cues that the transfer can start from
    single = (usable & (per_comp[cue_comp] == 1)[None, :]).any(1)

    fate[:] = POOR_MASK
    fate[~single] = MERGED
    fate[(cover < min_cover) | ~usable.any(1)] = WSSS_MISSED
    fate[~inside.any(1)] = NO_CUE
    fate[matched_gt(pseudo, gt, iou_thr)] = KEPT
    fate[~keep] = -1
    return fate


def count_fates(fates: Iterable[np.ndarray], classes: Iterable[np.ndarray], class_names: Sequence[str]) -> dict:
    """Totals of :func:`instance_fates` over images.

    Args:
        fates: per image ``(N,) int64`` fates; classes: per image ``(N,)`` the GT classes.
        class_names: C names.

    Returns:
        ``{"total": {fate: count}, "per_class": {name: {fate: count}}}`` (every fate listed, in
        the order of :data:`FATES`; crowd instances left out).
    """
    c, f = len(class_names), len(FATES)
    table = np.zeros((c, f), np.int64)
    for fa, cl in zip(fates, classes):
        fa, cl = np.asarray(fa, np.int64).reshape(-1), np.asarray(cl, np.int64).reshape(-1)
        ok = fa >= 0
        np.add.at(table, (cl[ok], fa[ok]), 1)
    return {"total": dict(zip(FATES, (int(v) for v in table.sum(0)))),
            "per_class": {name: dict(zip(FATES, (int(v) for v in table[k]))) for k, name in enumerate(class_names)}}


def format_lost(lost: dict) -> str:
    """One line of the totals: ``lost: no_cue 3, wsss_missed 1, merged 5, poor_mask 2; kept 20 of 31 GT``."""
    t = lost["total"]
    parts = ", ".join(f"{k} {t[k]}" for k in FATES[1:])
    return f"lost: {parts}; kept {t['kept']} of {sum(t.values())} GT"
