"""Regions: the connected components of each class of a class map.

Training (the ``components`` of a batch, :mod:`bestie_train.data`) and inference (the predicted
regions, :mod:`bestie_train.postprocess`) make their regions with the same function, so that
self-refinement and prediction see the same regions.
"""

from __future__ import annotations

import cv2
import numpy as np


def component_map(wsss: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """8-connected components of each image-level class of a WSSS mask.

    Args:
        wsss: ``(H, W) uint8`` class mask (0 background, k + 1 class k, 255 ignore).
        labels: ``(C,) bool`` image-level labels; only these classes get components.

    Returns:
        ``(H, W) int64``: 0 outside every component, ``1..K`` component ids numbered class by
        class (class order, then OpenCV's raster order within a class).
    """
    out = np.zeros(wsss.shape, np.int64)
    nxt = 0
    for c in np.flatnonzero(labels):
        m = (wsss == c + 1).astype(np.uint8)
        if not m.any():
            continue
        n, lab = cv2.connectedComponents(m, connectivity=8, ltype=cv2.CV_32S)
        fg = lab > 0
        out[fg] = lab[fg].astype(np.int64) + nxt
        nxt += n - 1
    return out
