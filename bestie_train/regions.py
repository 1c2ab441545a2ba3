"""Regions: the connected components of each class of a class map, and sums over them.

Training (the ``components`` of a batch, :mod:`bestie_train.data`) and inference (the predicted
regions, :mod:`bestie_train.postprocess`) make their regions with the same function, so that
self-refinement and prediction see the same regions.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

#: Regions smaller than this are dropped (official ``MINIMUM_MASK_SIZE``).
MIN_REGION_AREA = 50


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


def per_region_sum(regions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``(B, HW + 1)`` sums of ``values (B, H, W)`` per region id (ids must be <= H*W)."""
    b, h, w = regions.shape
    out = torch.zeros(b, h * w + 1, dtype=values.dtype, device=values.device)
    out.scatter_add_(1, regions.reshape(b, -1), values.reshape(b, -1))
    return out


def own_class_probability(logits: torch.Tensor, pixel_class: torch.Tensor) -> torch.Tensor:
    """Softmax probability of each pixel's class, computed on class pixels only.

    Args:
        logits: ``(B, C+1, H, W)`` semantic logits (channel 0 background).
        pixel_class: ``(B, H, W)`` int64 0-based class; -1 pixels are skipped.

    Returns:
        ``(B, H, W) float32``: ``softmax(logits)[class + 1]`` where ``pixel_class >= 0``, else 0.
    """
    sel = pixel_class >= 0
    out = torch.zeros(pixel_class.shape, dtype=torch.float32, device=logits.device)
    rows = logits.float().permute(0, 2, 3, 1)[sel]  # (N, C+1)
    own = rows.gather(1, (pixel_class[sel] + 1)[:, None]).squeeze(1)
    out[sel] = torch.exp(own - torch.logsumexp(rows, 1))
    return out
