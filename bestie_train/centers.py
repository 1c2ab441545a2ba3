"""Centers from a class-wise center heatmap and offsets: NMS and center clustering.

Both steps of :mod:`bestie_train.postprocess` (see its module docstring for the rules) that
find centers; batched on the tensors' device, with no host synchronisation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: Official defaults (clovaai/BESTIE main.py and utils/utils.py).
NMS_KERNEL = 41
TEST_THRESHOLD = 0.1
OFFSET_THRESHOLD = 2.5
CLUSTER_AREA = 21
CLUSTER_BETA = 3.0
CLUSTER_MIN_CENTER = 0.05
CLUSTER_FAR = 100.0


# ------------------------------------------------------------------------------------------
# NMS
# ------------------------------------------------------------------------------------------
def _window_max_last(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Maximum over a centred window of odd length ``kernel`` along the last dimension."""
    r = kernel // 2
    n = x.shape[-1]
    m = F.pad(x, (r, r), value=float("-inf"))
    span = 1
    # m[j] = max(padded[j : j + span]); doubling the span costs one comparison per step
    while 2 * span <= kernel:
        m = torch.maximum(m[..., :-span], m[..., span:])
        span *= 2
    # two windows of `span` cover [i, i + kernel)
    return torch.maximum(m[..., :n], m[..., kernel - span:kernel - span + n])


def window_max(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Maximum over the ``kernel x kernel`` window centred on each pixel.

    Args:
        x: ``(..., H, W)`` float; kernel: odd window size.

    Returns:
        same shape; out-of-image cells do not count (as ``max_pool2d`` with ``kernel // 2``
        padding). Computed separably (rows, then columns) with doubling spans, about
        ``2 log2(kernel)`` comparisons per pixel instead of ``kernel^2``.
    """
    if kernel % 2 != 1:
        raise ValueError(f"NMS kernel must be odd, got {kernel}")
    x = x.float()
    return _window_max_last(_window_max_last(x, kernel).transpose(-1, -2), kernel).transpose(-1, -2)


def nms_candidates(heat: torch.Tensor, kernel: int = NMS_KERNEL, threshold: float = TEST_THRESHOLD,
                   top_k: int = 200) -> dict:
    """Center NMS of a batch of heatmaps, fixed size (no host synchronisation).

    Args:
        heat: ``(B, C, H, W)`` float center heatmaps.
        kernel, threshold, top_k: NMS window, score threshold (strict ``>``), centers kept.

    Returns:
        dict with ``(B, K)`` tensors, ``K = min(top_k, C*H*W)``, highest score first:
        ``score`` float (``-inf`` where not a center), ``channel``, ``y``, ``x`` int64 and
        ``valid`` bool (a real center).
    """
    b, c, h, w = heat.shape
    heat = heat.float()
    keep = (heat == window_max(heat, kernel)) & (heat > threshold)
    score = heat.masked_fill(~keep, float("-inf")).reshape(b, -1)
    k = min(int(top_k), score.shape[1])
    top, idx = torch.topk(score, k, dim=1)
    pix = idx % (h * w)
    return {"score": top, "channel": idx // (h * w), "y": pix // w, "x": pix % w,
            "valid": torch.isfinite(top)}


# ------------------------------------------------------------------------------------------
# center clustering
# ------------------------------------------------------------------------------------------
def _label_areas(low: torch.Tensor, regions: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4-connected areas of ``low`` pixels within one region, labelled by ``steps`` rounds of
    propagating the smallest pixel index (see :func:`cluster_centers`).

    Args:
        low: ``(B, H, W)`` bool; regions: ``(B, H, W)`` int64.

    Returns:
        ``(lab (B, H, W) int64, bad (B, H, W) bool)``: each low pixel's label (``H * W`` for a
        pixel that is not low) and whether a reachable neighbour still carries another label
        (its area is larger than ``steps`` could label).
    """
    b, h, w = regions.shape
    n = h * w
    dev = regions.device
    big = n  # sentinel label: not a low-displacement pixel (labels are pixel indices < n)
    lab = torch.where(low, torch.arange(n, device=dev, dtype=torch.int32).view(1, h, w).expand(b, h, w),
                      torch.full((b, h, w), big, dtype=torch.int32, device=dev))
    # Neighbour d of a pixel is reachable when both are low and in the same region; an
    # unreachable neighbour gets a penalty of `big`, so min() never takes its label.
    rp = F.pad(regions, (1, 1, 1, 1), value=-1)
    lowp = F.pad(low, (1, 1, 1, 1), value=False)
    views = ((slice(1, -1), slice(2, None)), (slice(1, -1), slice(0, -2)),
             (slice(2, None), slice(1, -1)), (slice(0, -2), slice(1, -1)))
    pens = [torch.where(low & lowp[:, vy, vx] & (rp[:, vy, vx] == regions), 0, big).to(torch.int32)
            for vy, vx in views]
    lp = torch.full((b, h + 2, w + 2), big, dtype=torch.int32, device=dev)
    for _ in range(steps):
        lp[:, 1:-1, 1:-1] = lab
        new = lab
        for (vy, vx), pen in zip(views, pens):
            new = torch.minimum(new, lp[:, vy, vx] + pen)
        # on the CPU a check is free: stop once every area is uniform (on a GPU it would sync)
        done = not new.is_cuda and torch.equal(new, lab)
        lab = new
        if done:
            break
    # an area is complete when no reachable neighbour carries another label
    lp[:, 1:-1, 1:-1] = lab
    bad_pix = torch.zeros_like(low)
    for (vy, vx), pen in zip(views, pens):
        bad_pix |= (pen == 0) & (lp[:, vy, vx] != lab)
    return lab.long(), bad_pix


def cluster_centers(offset: torch.Tensor, regions: torch.Tensor, heat_at: torch.Tensor,
                    offset_threshold: float = OFFSET_THRESHOLD, area: float = CLUSTER_AREA,
                    beta: float = CLUSTER_BETA, min_center: float = CLUSTER_MIN_CENTER,
                    max_clusters: int = 16) -> dict:
    """Clustered centers: centroids of small low-displacement areas (no host synchronisation).

    Args:
        offset: ``(B, 2, H, W)`` predicted offsets (dy, dx).
        regions: ``(B, H, W)`` int64 region ids (0 = none, ids <= H*W); areas never cross
            regions.
        heat_at: ``(B, H, W)`` float, the heatmap of each pixel's region class (0 outside).
        offset_threshold: a pixel is low-displacement when ``||offset|| < offset_threshold``.
        area, beta: an area of ``a`` pixels (4-connected) is kept if
            ``area - beta < a < area + beta``.
        min_center: the heatmap at the centroid must be ``> min_center`` and the centroid
            inside the area's region.
        max_clusters: at most this many per image (by raster order of their first pixel).

    Returns:
        dict of ``(B, K)`` tensors: ``y``, ``x`` (floored centroid), ``region`` int64 and
        ``valid`` bool.

    Areas are labelled by propagating the smallest pixel index through 4-neighbours of the
    same region for ``ceil(area + beta)`` steps: enough to label exactly every area smaller
    than ``area + beta``; a larger area that is not yet uniform is recognised (a neighbour with
    another label) and dropped, as its size is out of range anyway.
    """
    b, h, w = regions.shape
    n = h * w
    dev = regions.device
    mag2 = offset[:, 0].float() ** 2 + offset[:, 1].float() ** 2
    low = (mag2 < offset_threshold ** 2) & (regions > 0)
    lab, bad_pix = _label_areas(low, regions, int(np.ceil(area + beta)))
    flat = lab.reshape(b, -1)
    ones = low.reshape(b, -1).float()
    cnt = torch.zeros(b, n + 1, device=dev).scatter_add_(1, flat, ones)
    bad = torch.zeros(b, n + 1, device=dev).scatter_add_(1, flat, bad_pix.reshape(b, -1).float())
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1).expand(b, h, w).reshape(b, -1)
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w).expand(b, h, w).reshape(b, -1)
    sy = torch.zeros(b, n + 1, device=dev).scatter_add_(1, flat, ys * ones)
    sx = torch.zeros(b, n + 1, device=dev).scatter_add_(1, flat, xs * ones)
    cnt, bad, sy, sx = cnt[:, :n], bad[:, :n], sy[:, :n], sx[:, :n]
    ok = (cnt > area - beta) & (cnt < area + beta) & (bad == 0)
    k = min(int(max_clusters), n)
    # first `k` roots in raster order: larger key for smaller index
    key = torch.where(ok, (n - torch.arange(n, device=dev, dtype=torch.float32)).expand(b, n),
                      torch.zeros(b, n, device=dev))
    top, root = torch.topk(key, k, dim=1)
    valid = top > 0
    c = cnt.gather(1, root).clamp(min=1)
    cy = torch.floor(sy.gather(1, root) / c).long().clamp(0, h - 1)
    cx = torch.floor(sx.gather(1, root) / c).long().clamp(0, w - 1)
    reg_flat = regions.reshape(b, -1)
    region = reg_flat.gather(1, root)
    at = cy * w + cx
    valid &= (reg_flat.gather(1, at) == region) & (heat_at.reshape(b, -1).gather(1, at) > min_center)
    return {"y": cy, "x": cx, "region": region, "valid": valid}
