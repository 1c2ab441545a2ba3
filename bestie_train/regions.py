"""Sums over regions, and the class probability of region pixels.

The regions are the connected components of each class of a class map
(:func:`bestie_labels.algorithms.components.component_map`): training (the ``components`` of a
batch, :mod:`bestie_train.data`) and inference (the predicted regions,
:mod:`bestie_train.postprocess`) make them with that one function, so that self-refinement and
prediction see the same regions.
"""

from __future__ import annotations

import torch


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
