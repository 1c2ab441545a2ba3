"""Built-in weakly-supervised semantic segmentation baseline from plain CAMs.

``cam_to_mask`` turns normalised class activation maps into a class mask: the background gets
a constant score ``bg_threshold`` and every pixel takes the arg-max over [background, classes of
the image-level label]. No dense-CRF refinement: no maintained CRF package installs here
(pydensecrf is unmaintained; its fork pydensecrf2 ships only a source archive whose C++ build
did not finish in 400 s on the 2-core machine).

This is the baseline (``wsss --method cam``); the built-in default is IRN
(:mod:`bestie_labels.irn`), and a stronger WSSS method can be imported with ``wsss --import``
(paper Table 4).
"""

from __future__ import annotations

import numpy as np


#: Default background score for activation maps divided by their max: a pixel is background
#: unless some labelled class reaches 30% of its peak there. Chosen on the demo data (train
#: split, tiny classifier with PAM disabled at inference): mIoU 0.66 / 0.72 / 0.79 / 0.78 / 0.71
#: at 0.15 / 0.2 / 0.3 / 0.4 / 0.5. Real photos may want a lower value (IRN-style CAM
#: baselines use about 0.15-0.25); pass ``bg_threshold``.
DEFAULT_BG_THRESHOLD = 0.3


def cam_to_mask(maps, labels, bg_threshold: float = DEFAULT_BG_THRESHOLD) -> np.ndarray:
    """Class mask from normalised activation maps.

    Args:
        maps: ``(C, H, W)`` float in about [0, 1] (numpy or torch).
        labels: ``(C,) bool`` image-level label; only these classes can win.
        bg_threshold: constant background score.

    Returns:
        ``(H, W) uint8``: 0 background, ``k + 1`` for class k.
    """
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, np.float32)
    labels = np.asarray(labels, bool)
    if maps.ndim != 3 or labels.shape != (maps.shape[0],):
        raise ValueError(f"maps (C,H,W) and labels (C,) expected, got {maps.shape} and {labels.shape}")
    cls = np.flatnonzero(labels)
    h, w = maps.shape[1:]
    if cls.size == 0:
        return np.zeros((h, w), np.uint8)
    scores = np.concatenate([np.full((1, h, w), bg_threshold, np.float32), maps[cls]], axis=0)
    lut = np.concatenate([[0], cls + 1]).astype(np.uint8)
    return lut[np.argmax(scores, axis=0)]
