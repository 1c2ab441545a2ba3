"""Inter-pixel affinities from a boundary map, and the affinity labels that train it (IRN).

* :func:`boundary_to_affinity`: ``a(p, p + d) = 1 - max`` of the boundary map on the path
  between the two pixels (outside the image counts as boundary, so pairs leaving it get 0);
* :func:`affinity_labels`: from a region map of confident seeds, which pairs must be connected
  (same region: both background, or both in the same foreground region) and which must be cut
  (different regions); pairs touching an uncertain pixel are not used.

Torch functions on ``(B, H, W)`` tensors (CPU or GPU); no Python loop over pixels, only over the
``K`` offsets and their path pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .paths import path_offsets, search_offsets

#: Region value of an uncertain pixel in :func:`affinity_labels`.
IGNORE = -1


def _shifted(x: torch.Tensor, pad: int, oy: int, ox: int, h: int, w: int) -> torch.Tensor:
    """``x_padded[..., oy:oy + h, pad + ox:pad + ox + w]`` of a tensor padded by ``pad`` on the
    left, right and bottom: the value at ``p + (oy, ox)`` for every pixel ``p``."""
    return x[..., oy:oy + h, pad + ox:pad + ox + w]


def boundary_to_affinity(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """Affinities of every pair ``(p, p + d)`` for the offsets of ``search_offsets(radius)``.

    Args:
        boundary: ``(B, H, W)`` float in [0, 1], 1 = boundary.
        radius: pairs with ``|d| < radius``.

    Returns:
        ``(B, K, H, W)`` float, indexed by source pixel ``p``; 0 where ``p + d`` is outside.
    """
    b, h, w = boundary.shape
    pad = radius - 1
    padded = F.pad(boundary, (pad, pad, 0, pad), value=1.0)
    out = []
    # Shifted views and a running maximum: faster on a CPU than one gather of every path pixel
    # (which materialises K x P maps at once).
    for dy, dx in search_offsets(radius).tolist():
        path = path_offsets(dy, dx).tolist()
        m = _shifted(padded, pad, path[0][0], path[0][1], h, w)
        for oy, ox in path[1:]:
            m = torch.maximum(m, _shifted(padded, pad, oy, ox, h, w))
        out.append(1.0 - m)
    return torch.stack(out, 1)


def affinity_labels(regions: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training labels of the pairs of :func:`boundary_to_affinity`.

    Args:
        regions: ``(B, H, W)`` int: 0 confident background, ``> 0`` a foreground region (a
            class, or one connected seed component: then two touching instances of a class are
            different regions), :data:`IGNORE` uncertain.
        radius: as :func:`boundary_to_affinity`.

    Returns:
        ``(bg_pos, fg_pos, neg)``, each ``(B, K, H, W) bool``: both pixels background; both in
        the same foreground region; in different regions. Pairs with an uncertain pixel or a
        destination outside the image are in none of them.
    """
    b, h, w = regions.shape
    pad = radius - 1
    padded = F.pad(regions, (pad, pad, 0, pad), value=IGNORE)
    src = regions
    bg, fg, neg = [], [], []
    for dy, dx in search_offsets(radius).tolist():
        dst = _shifted(padded, pad, dy, dx, h, w)
        valid = (src != IGNORE) & (dst != IGNORE)
        same = src == dst
        bg.append(valid & same & (src == 0))
        fg.append(valid & same & (src > 0))
        neg.append(valid & ~same)
    return torch.stack(bg, 1), torch.stack(fg, 1), torch.stack(neg, 1)
