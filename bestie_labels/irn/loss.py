"""IRN's affinity loss on the boundary map (class-boundary branch of ``train_irn``)."""

from __future__ import annotations

import torch

from .affinity import affinity_labels, boundary_to_affinity

_EPS = 1e-5


def _masked_mean(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(loss.dtype)
    return (loss * m).sum() / (m.sum() + _EPS)


def affinity_loss(logits: torch.Tensor, regions: torch.Tensor, radius: int) -> dict[str, torch.Tensor]:
    """Loss of boundary logits against the region maps of the seeds.

    Args:
        logits: ``(B, h, w)`` boundary logits.
        regions: ``(B, h, w)`` int64 region maps at the same stride (0 background, > 0 region,
            -1 uncertain).
        radius: pairs with ``|d| < radius`` (IRN trains with 10).

    Returns:
        dict ``bg_pos``, ``fg_pos``, ``neg`` (means of ``-log a`` over connected pairs of the
        background and of the foreground, of ``-log(1 - a)`` over cut pairs) and ``total =
        (bg_pos / 2 + fg_pos / 2 + neg) / 2``, the balance IRN uses.
    """
    aff = boundary_to_affinity(torch.sigmoid(logits), radius)
    bg, fg, neg = affinity_labels(regions, radius)
    pos_loss = -torch.log(aff + _EPS)
    neg_loss = -torch.log(1.0 + _EPS - aff)
    out = {"bg_pos": _masked_mean(pos_loss, bg), "fg_pos": _masked_mean(pos_loss, fg),
           "neg": _masked_mean(neg_loss, neg)}
    out["total"] = (out["bg_pos"] / 2 + out["fg_pos"] / 2 + out["neg"]) / 2
    return out
