"""Instance grouping, Eq. (1) of the paper: each foreground pixel joins the center closest to
where its offset points.

One implementation for post-processing (:mod:`bestie_train.postprocess`: inference and the
self-refinement of :mod:`bestie_train.refine`); grouping the targets of
:func:`bestie_train.targets.make_targets` gives their instance map back.
"""

from __future__ import annotations

import torch


def group_pixels(offset: torch.Tensor, centers: torch.Tensor, mask: torch.Tensor | None = None,
                 center_group: torch.Tensor | None = None, pixel_group: torch.Tensor | None = None,
                 chunk_pixels: int = 1 << 22) -> torch.Tensor:
    """Instance grouping, Eq. (1) of the paper.

    Each pixel ``(y, x)`` of ``mask`` votes for the location ``(y + dy, x + dx)`` its offset
    points to and joins the nearest center (Euclidean distance; ties go to the lower index):
    ``k(y, x) = argmin_k || (cx_k, cy_k) - (x + dx, y + dy) ||``. With groups, the argmin runs
    over the centers of the pixel's own group only (the trainer groups within each region of a
    class, Panoptic-DeepLab's class-wise centers).

    Args:
        offset: ``(2, H, W)`` float, ``(dy, dx)``.
        centers: ``(K, 2)`` float, ``(x, y)``.
        mask: ``(H, W)`` bool, the foreground to group (None: every pixel).
        center_group: ``(K,)`` int64 group of each center; negative disables the center.
        pixel_group: ``(H, W)`` int64 group of each pixel; negative means "not grouped".
        chunk_pixels: bound on ``K x pixels`` distances held at once (memory), not a result
            parameter.

    Returns:
        ``(H, W) int64`` on ``offset.device``: ``k + 1`` for the k-th center, 0 outside ``mask``,
        for ungrouped pixels and for pixels whose group has no center (everywhere when ``K = 0``).
    """
    offset = torch.as_tensor(offset)
    device = offset.device
    height, width = offset.shape[-2:]
    centers = torch.as_tensor(centers, device=device, dtype=torch.float32).reshape(-1, 2)
    k = centers.shape[0]
    if k == 0:
        return torch.zeros(height, width, dtype=torch.long, device=device)
    grouped = center_group is not None and pixel_group is not None
    if grouped:
        cgroup = torch.as_tensor(center_group, device=device).long()
        cgroup = cgroup.masked_fill(cgroup < 0, -3)  # never equal to a pixel's group
        pgroup = torch.as_tensor(pixel_group, device=device).long().reshape(-1)
    ys = torch.arange(height, device=device, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, -1)
    vy = (ys + offset[0].float()).reshape(-1)  # where each pixel points, (H*W,)
    vx = (xs + offset[1].float()).reshape(-1)
    cx, cy = centers[:, 0:1], centers[:, 1:2]  # (K, 1)
    ids = torch.empty(height * width, dtype=torch.long, device=device)
    step = max(1, chunk_pixels // k)
    for s in range(0, height * width, step):
        d2 = (cx - vx[None, s:s + step]) ** 2 + (cy - vy[None, s:s + step]) ** 2  # (K, P)
        if grouped:
            d2 = d2.masked_fill(cgroup[:, None] != pgroup[None, s:s + step], float("inf"))
            best, arg = d2.min(0)
            ids[s:s + step] = torch.where(torch.isfinite(best) & (pgroup[s:s + step] >= 0), arg + 1, 0)
        else:
            ids[s:s + step] = torch.argmin(d2, 0) + 1
    ids = ids.view(height, width)
    if mask is not None:
        ids = ids * torch.as_tensor(mask, device=device).bool().long()
    return ids

