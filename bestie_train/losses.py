"""Training losses of BESTIE, Eq. (3)-(6) of the paper.

* semantic: cross-entropy over the ``C+1`` classes keeping only the hardest 20% of the pixels
  ("top-k" bootstrapped CE of Panoptic-DeepLab / TF DeepLab), label 255 ignored;
* center: weighted MSE between the class-wise center heatmap and its target;
* offset: weighted L1 between the ``(dy, dx)`` offset map and its target.

Center and offset losses are summed over channels and divided by the number of pixels whose
weight is positive (0 when there is none, never NaN). With instance-aware guidance (IAG, paper
Sec. 3.4) the weight of the pseudo-label terms is the pseudo-instance mask (``weight`` of
:func:`bestie_train.targets.make_targets`) and the weight of the refined terms is the soft
mask of Eq. (2) (``weight`` of :func:`bestie_train.refine.refine_targets`); ``iag=False`` (the
ablation) puts weight 1 on every pixel for all center/offset terms.

Total, Eq. (6) with the two-part Eq. (3)/(4) averaged as in the official trainer::

    total = L_sem + 0.5 * (L_center_pseudo + L_center_refined)
                  + 0.5 * (L_offset_pseudo + L_offset_refined)

Without refinement (``refined=None``) the refined terms *are* the pseudo terms (as in the
official code), so the total is ``L_sem + L_center_pseudo + L_offset_pseudo``: the 0.5 factors
only split the weight between two label sources when there are two. Every term reported is
already multiplied by its lambda (1 semantic, 200 center, 0.01 offset).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bestie_labels.core.constants import VOID



@dataclass(frozen=True)
class LossWeights:
    """Lambdas of Eq. (6) (the Panoptic-DeepLab values used by the paper)."""

    semantic: float = 1.0
    center: float = 200.0
    offset: float = 0.01


def hard_pixel_ce(logits: torch.Tensor, target: torch.Tensor, top_k_percent: float = 0.2,
                  ignore_index: int = VOID) -> torch.Tensor:
    """Cross-entropy averaged over the hardest pixels of the batch.

    Args:
        logits: ``(B, C+1, H, W)`` float semantic logits.
        target: ``(B, H, W)`` int64 class map, ``ignore_index`` = void.
        top_k_percent: fraction of pixels kept; ``k = max(1, floor(top_k_percent * B*H*W))``
            counted over *all* pixels as in the official code (16 pixels, 20% -> 3).
            ``1.0`` keeps every valid pixel.

    Returns:
        scalar: mean of the ``k`` largest per-pixel losses among the valid (non-ignored)
        pixels; if there are ``k`` or fewer valid pixels, the mean over all valid pixels;
        0 if none is valid. No host synchronisation.
    """
    pixel = F.cross_entropy(logits.float(), target.long(), ignore_index=ignore_index,
                            reduction="none").reshape(-1)
    valid = (target.reshape(-1) != ignore_index)
    n = pixel.numel()
    if top_k_percent >= 1.0:
        k = n
    else:
        k = max(1, int(top_k_percent * n))
    # Ignored pixels can never be among the hardest: give them -inf and drop them after topk.
    scores = pixel.masked_fill(~valid, float("-inf"))
    top, _ = torch.topk(scores, k, sorted=False)
    kept = torch.isfinite(top)
    total = torch.where(kept, top, torch.zeros_like(top)).sum()
    return total / kept.sum().clamp(min=1)


def _weighted_mean(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_c sum_pixels weight * err / #(weight > 0)``; ``err`` is ``(B, K, H, W)``,
    ``weight`` is ``(B, H, W)``."""
    w = weight.to(err.dtype)
    total = (err * w[:, None]).sum()
    count = (weight > 0).sum()
    return total / count.clamp(min=1)


def center_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted MSE of the center heatmap.

    Args:
        pred, target: ``(B, C, H, W)`` float.
        weight: ``(B, H, W)`` float, shared by the ``C`` channels.

    Returns:
        scalar ``sum w * (pred - target)^2 / #(w > 0)`` (0 if no weight is positive).
    """
    return _weighted_mean((pred.float() - target.float()) ** 2, weight)


def offset_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted L1 of the offset map.

    Args:
        pred, target: ``(B, 2, H, W)`` float ``(dy, dx)``.
        weight: ``(B, H, W)`` float.

    Returns:
        scalar ``sum w * |pred - target| / #(w > 0)`` (0 if no weight is positive).
    """
    return _weighted_mean((pred.float() - target.float()).abs(), weight)


def bestie_loss(outputs: dict, semantic_target: torch.Tensor, pseudo: dict, refined: dict | None = None,
                iag: bool = True, weights: LossWeights = LossWeights(),
                top_k_percent: float = 0.2) -> dict:
    """All loss terms of a mini-batch.

    Args:
        outputs: model outputs ``semantic (B,C+1,H,W)``, ``center (B,C,H,W)``, ``offset (B,2,H,W)``.
        semantic_target: ``(B, H, W)`` int64 WSSS class map (0 background, k+1 class k, 255 void).
        pseudo: pseudo-label targets ``center (B,C,H,W)``, ``offset (B,2,H,W)``, ``weight (B,H,W)``
            (the batched :func:`bestie_train.targets.make_targets` output).
        refined: refined targets with the same keys (:func:`bestie_train.refine.refine_targets`),
            or ``None`` when self-refinement is off.
        iag: instance-aware guidance; ``False`` replaces every weight map by ones.
        weights: lambdas of Eq. (6).
        top_k_percent: hard-pixel fraction of the semantic loss.

    Returns:
        dict of scalar tensors ``semantic``, ``center_pseudo``, ``center_refined``,
        ``offset_pseudo``, ``offset_refined`` (each already times its lambda) and ``total``
        (differentiable). Without ``refined`` the refined entries equal the pseudo ones.
    """
    sem = hard_pixel_ce(outputs["semantic"], semantic_target, top_k_percent) * weights.semantic

    def weight_of(t):
        return t["weight"] if iag else torch.ones_like(t["weight"])

    c_p = center_loss(outputs["center"], pseudo["center"], weight_of(pseudo)) * weights.center
    o_p = offset_loss(outputs["offset"], pseudo["offset"], weight_of(pseudo)) * weights.offset
    if refined is None:
        c_r, o_r = c_p, o_p
    else:
        c_r = center_loss(outputs["center"], refined["center"], weight_of(refined)) * weights.center
        o_r = offset_loss(outputs["offset"], refined["offset"], weight_of(refined)) * weights.offset
    total = sem + 0.5 * (c_p + c_r) + 0.5 * (o_p + o_r)
    return {"semantic": sem, "center_pseudo": c_p, "center_refined": c_r,
            "offset_pseudo": o_p, "offset_refined": o_r, "total": total}
