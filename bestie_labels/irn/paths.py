"""Pixel pairs within a radius and the pixels on the segment between them (IRN, Ahn et al. 2019).

A pair is a source pixel ``p`` and a destination ``p + d`` for an offset ``d = (dy, dx)`` of
the *half* neighbourhood returned by :func:`search_offsets` (each unordered pair once). The
affinity of a pair is read off the boundary map along the straight path between the two pixels
(:func:`path_offsets`), so a boundary anywhere between them cuts the pair.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def search_offsets(radius: int) -> np.ndarray:
    """Offsets ``(dy, dx)`` with ``0 < dy^2 + dx^2 < radius^2`` in one half-plane.

    The half-plane is ``dy > 0``, or ``dy == 0`` and ``dx > 0``; the other half is the same
    pairs seen from the destination. Returns ``(K, 2) int64`` in raster order (dy, then dx).
    ``radius=2`` gives ``(0, 1), (1, -1), (1, 0), (1, 1)``.
    """
    r = int(radius)
    if r < 2:
        raise ValueError(f"radius must be >= 2, got {radius}")
    out = [(dy, dx) for dy in range(0, r) for dx in range(-r + 1, r)
           if (dy > 0 or dx > 0) and dy * dy + dx * dx < r * r]
    return np.asarray(out, np.int64).reshape(-1, 2)


@lru_cache(maxsize=None)
def path_offsets(dy: int, dx: int) -> np.ndarray:
    """Pixels ``(y, x)`` relative to the source whose centre lies within 1 pixel of the segment
    from ``(0, 0)`` to ``(dy, dx)``, both ends included. Returns ``(P, 2) int64``.

    ``(0, 2)`` gives ``(0, 0), (0, 1), (0, 2)``; ``(1, 1)`` gives all four pixels of the 2x2
    square (their distance to the diagonal is 0 or 0.71).
    """
    y0, y1 = sorted((0, dy))
    x0, x1 = sorted((0, dx))
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    ys, xs = ys.ravel(), xs.ravel()
    length_sq = dy * dy + dx * dx
    keep = (dy * xs - dx * ys) ** 2 < length_sq  # squared distance to the line < 1
    return np.stack([ys[keep], xs[keep]], 1).astype(np.int64)
