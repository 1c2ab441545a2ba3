"""Colours of every figure: classes, instances, match outcomes, and legends.

A class k (0-based) is drawn in the PASCAL VOC colour of index ``k + 1`` (the colour of
``SegmentationClass`` PNGs, background 0 black), so a class looks the same in the WSSS mask,
the cue markers and the legend. Instances get hues well apart for neighbouring ids.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.fileio import voc_palette

#: Outline of a pseudo / predicted instance matched to a GT instance (IoU >= threshold).
TP_COLOUR = np.array([0, 210, 0], np.uint8)
#: Outline of a pseudo / predicted instance matched to none.
FP_COLOUR = np.array([235, 20, 20], np.uint8)
#: Outline and tag of a GT instance no pseudo / predicted instance matched.
MISSED_COLOUR = np.array([255, 140, 0], np.uint8)
#: Outline of a matched GT instance.
MATCHED_GT_COLOUR = np.array([255, 255, 255], np.uint8)


def class_colours(num_classes: int) -> np.ndarray:
    """``(num_classes, 3) uint8`` RGB: class k in VOC palette colour ``k + 1``."""
    return voc_palette()[1:num_classes + 1]


def instance_colours(n: int) -> np.ndarray:
    """``(n, 3) uint8`` RGB colours, well apart for neighbouring ids (golden-ratio hues)."""
    import cv2

    hue = (np.arange(n) * 0.618033988749895 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hue, np.full(n, 200, np.uint8), np.full(n, 255, np.uint8)], 1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0] if n else np.zeros((0, 3), np.uint8)


def hex_colour(rgb: Sequence[int]) -> str:
    """``"#rrggbb"`` of an RGB triple."""
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def legend_entries(mask: np.ndarray, class_names: Sequence[str], background: bool = True) -> list[dict]:
    """The classes present in a class mask, for a legend.

    Args:
        mask: ``(H, W) uint8`` class mask (0 background, k + 1 class k, 255 void).
        class_names: C names.
        background: list background (value 0) when present.

    Returns:
        ``[{"value", "name", "colour" ("#rrggbb"), "pixels"}, ...]`` in value order; void (255)
        is ``"void"`` in white.
    """
    pal = voc_palette()
    counts = np.bincount(np.asarray(mask, np.uint8).ravel(), minlength=256)
    names = {0: "background", 255: "void", **{k + 1: n for k, n in enumerate(class_names)}}
    out = []
    for v in np.flatnonzero(counts):
        if v == 0 and not background:
            continue
        colour = (255, 255, 255) if v == 255 else pal[v]
        out.append({"value": int(v), "name": names.get(int(v), f"class {v - 1}"),
                    "colour": hex_colour(colour), "pixels": int(counts[v])})
    return out
