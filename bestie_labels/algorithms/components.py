"""Connected components of each class of a class mask: the regions of training batches
(self-refinement), of predictions (post-processing) and the components the semantic knowledge
transfer keeps, all with the same ``connectivity`` option.

Pure functions over numpy arrays; no I/O.
"""

from __future__ import annotations

import numpy as np

#: The pixel connectivities a component may have: 4 (edge neighbours) or 8 (edges and corners).
CONNECTIVITIES = (4, 8)
#: The default, the official code's (``cv2.connectedComponents`` / ``skimage.measure.label``).
CONNECTIVITY = 8


def check_connectivity(connectivity: int) -> int:
    """``connectivity`` as an int, or ``ValueError`` when it is not 4 or 8."""
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    return int(connectivity)


def component_map(mask: np.ndarray, labels: np.ndarray, connectivity: int = CONNECTIVITY) -> np.ndarray:
    """Connected components of each image-level class of a class mask.

    Args:
        mask: ``(H, W) uint8`` class mask (0 background, k + 1 class k, 255 void).
        labels: ``(C,) bool`` image-level labels; only these classes get components.
        connectivity: 4 or 8 (:data:`CONNECTIVITIES`).

    Returns:
        ``(H, W) int64``: 0 outside every component, ``1..K`` component ids numbered class by
        class (class order, then OpenCV's raster order within a class).
    """
    import cv2  # here: the command line reads CONNECTIVITIES without loading OpenCV

    connectivity = check_connectivity(connectivity)
    out = np.zeros(mask.shape, np.int64)
    nxt = 0
    for c in np.flatnonzero(labels):
        m = (mask == c + 1).astype(np.uint8)
        if not m.any():
            continue
        n, lab = cv2.connectedComponents(m, connectivity=connectivity, ltype=cv2.CV_32S)
        fg = lab > 0
        out[fg] = lab[fg].astype(np.int64) + nxt
        nxt += n - 1
    return out
