"""From network outputs to instances: center NMS, center clustering and grouping (Eq. 1).

The trainer's network predicts a semantic map, a *class-wise* center heatmap (the paper's
change to Panoptic-DeepLab) and ``(dy, dx)`` offsets. Instances are read off them as in the
official BESTIE code, per *region*: a region is an 8-connected component of one class (of the
WSSS mask during self-refinement, of the predicted semantic map at inference).

1. **Center NMS** (:func:`center_nms`, paper Sec. 3.2): a pixel is a center of class ``c`` when
   its heatmap value equals the maximum of the ``kernel x kernel`` window around it (41 in the
   official code) and exceeds ``threshold`` (0.1 at inference, 0.3 in self-refinement), at
   most ``top_k`` centers per image (highest first). Equal values inside one window (a
   plateau) are all kept, as in Panoptic-DeepLab. The heatmap of class ``c`` is zeroed outside
   the regions of class ``c`` first, so a center always lies inside a region of its class.
2. **Center clustering** (:func:`cluster_centers`, supplementary material of the paper): the
   pixels whose predicted offset is shorter than 2.5 px form "low-displacement" areas (where
   offsets converge: the middle of an object). Each 4-connected area, within one region, whose
   size ``a`` satisfies ``21 - beta < a < 21 + beta`` (``beta = 3``) gives a clustered center at
   its centroid (coordinates floored), kept if the region's heatmap there exceeds 0.05 and
   added only if the region has no NMS center or every NMS center of the region is more than
   100 px away. A clustered center counts as a center of score 1.
3. **Grouping** (:func:`bestie_labels.targets.group_pixels`, Eq. 1): every pixel of a region joins the
   nearest center (of that region) to where its offset points.

Everything runs batched on the tensors' device; the only host synchronisations are two sizes
per call (the most classes, and the most centers, of one image), so self-refinement has no
per-instance sync.
Connected components are the caller's: training batches carry them (``components`` of
:mod:`bestie_train.data`); at inference :func:`predict_instances` makes them with the same
:func:`bestie_train.regions.component_map`.

Deviations from the official code, on purpose: NMS is done once per class on the heatmap
masked to the class's regions (the official code masks per region, so only centers of two
*different* regions of the same class less than ``kernel / 2`` px apart can differ);
areas of the clustering are exact only below ``21 + beta`` pixels, which is all the rule needs;
the official clustering also tests OpenCV's label 0 (the region's pixels that are *not*
low-displacement) as an area, which we do not; a clustered center's score is 1, so an
instance grown from one scores its mean class probability (the official test code ends up
with that probability squared).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bestie_labels.targets import group_pixels

from .regions import component_map

#: Official defaults (clovaai/BESTIE main.py and utils/utils.py).
NMS_KERNEL = 41
TEST_THRESHOLD = 0.1
MIN_REGION_AREA = 50
OFFSET_THRESHOLD = 2.5
CLUSTER_AREA = 21
CLUSTER_BETA = 3.0
CLUSTER_MIN_CENTER = 0.05
CLUSTER_FAR = 100.0


# ------------------------------------------------------------------------------------------
# regions
# ------------------------------------------------------------------------------------------
def _per_region_sum(regions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``(B, HW + 1)`` sums of ``values (B, H, W)`` per region id (ids must be <= H*W)."""
    b, h, w = regions.shape
    out = torch.zeros(b, h * w + 1, dtype=values.dtype, device=values.device)
    out.scatter_add_(1, regions.reshape(b, -1), values.reshape(b, -1))
    return out


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


def center_nms(heat: torch.Tensor, kernel: int = NMS_KERNEL, threshold: float = TEST_THRESHOLD,
               top_k: int = 200) -> dict:
    """Centers of one class-wise heatmap.

    Args:
        heat: ``(C, H, W)`` float.
        kernel: max-pool window (odd); threshold: a center's value must be ``> threshold``;
        top_k: at most this many centers (the highest).

    Returns:
        dict ``centers (K, 2) int64`` (x, y), ``classes (K,) int64``, ``scores (K,) float32``,
        highest score first. Pixels of a plateau (equal values within a window) are all
        centers.
    """
    cand = nms_candidates(heat[None], kernel, threshold, top_k)
    v = cand["valid"][0]
    return {"centers": torch.stack([cand["x"][0][v], cand["y"][0][v]], 1),
            "classes": cand["channel"][0][v], "scores": cand["score"][0][v]}


# ------------------------------------------------------------------------------------------
# center clustering
# ------------------------------------------------------------------------------------------
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
    steps = int(np.ceil(area + beta))
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
    lab = lab.long()
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


# ------------------------------------------------------------------------------------------
# grouping
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# the shared pipeline
# ------------------------------------------------------------------------------------------
def region_instances(heat: torch.Tensor, offset: torch.Tensor, regions: torch.Tensor,
                     pixel_class: torch.Tensor, own_prob: torch.Tensor | None = None, *,
                     kernel: int = NMS_KERNEL, threshold: float = TEST_THRESHOLD, top_k: int = 200,
                     cluster: bool = True, max_clusters: int = 16, offset_threshold: float = OFFSET_THRESHOLD,
                     cluster_area: float = CLUSTER_AREA, beta: float = CLUSTER_BETA,
                     cluster_min_center: float = CLUSTER_MIN_CENTER, cluster_far: float = CLUSTER_FAR,
                     min_area: int = MIN_REGION_AREA, max_per_region: int | None = None) -> dict:
    """Centers (NMS + clustering) and Eq. (1) grouping inside class regions, batched.

    Args:
        heat: ``(B, C, H, W)`` center heatmaps; offset: ``(B, 2, H, W)`` (dy, dx).
        regions: ``(B, H, W)`` int64 region ids (0 none, ids <= H*W); each region is one class.
        pixel_class: ``(B, H, W)`` int64, the 0-based class of each region pixel (-1 outside).
        own_prob: optional ``(B, H, W)`` probability of each pixel's region class (for
            ``seg_score``; see :func:`own_class_probability`).
        kernel, threshold, top_k: center NMS; cluster, max_clusters, offset_threshold,
        cluster_area, beta, cluster_min_center, cluster_far: center clustering (see module doc).
        min_area: regions smaller than this are dropped (official ``MINIMUM_MASK_SIZE``).
        max_per_region: regions with more centers than this are dropped (None: no limit).

    Returns:
        dict; ``K`` center slots per image (the most centers any image of the batch has):
        ``instances (B, H, W) int64`` (0 none, ``k + 1`` slot k), ``valid (B, K) bool`` (a
        center that got at least one pixel), ``classes (B, K)``, ``region (B, K)``,
        ``center_y/center_x (B, K)`` the center found, ``peak_y/peak_x (B, K)`` the best pixel
        of the mask (highest heatmap, a clustered center counting 1), ``center_score (B, K)``
        (heatmap there), ``is_cluster (B, K)``, ``area (B, K)`` pixels, ``seg_score (B, K)``
        mean probability of the class over the mask (0 without ``own_prob``), and the region
        maps ``regions`` (after dropping, 0 elsewhere), ``region_area (B, HW+1)``,
        ``score_map (B, H, W)`` (heatmap of each pixel's class, clustered centers set to 1).
    """
    b, c, h, w = heat.shape
    n = h * w
    dev = heat.device
    heat = heat.float()
    regions = regions.to(dev).long()
    pixel_class = pixel_class.to(dev).long()
    inreg = (regions > 0) & (pixel_class >= 0)
    regions = torch.where(inreg, regions, torch.zeros_like(regions))
    region_area = _per_region_sum(regions, inreg.float())
    region_area[:, 0] = 0
    big_enough = region_area.gather(1, regions.reshape(b, -1)).reshape(b, h, w) >= min_area
    inreg &= big_enough
    regions = torch.where(inreg, regions, torch.zeros_like(regions))
    cls_pix = torch.where(inreg, pixel_class, torch.zeros_like(pixel_class))

    # heatmap of each pixel's own class, and class-wise heatmaps restricted to the regions
    heat_at = heat.gather(1, cls_pix[:, None]).squeeze(1) * inreg
    # Class-wise NMS, but only over the classes each image has regions of: slot j of image i
    # holds its j-th class (``J`` = most classes in one image; one host sync).
    present = torch.zeros(b, c, device=dev).scatter_add_(
        1, cls_pix.reshape(b, -1), inreg.reshape(b, -1).float()) > 0
    j = max(1, int(present.sum(1).max()))
    slot_cls = torch.sort(torch.where(present, torch.arange(c, device=dev), c), dim=1).values[:, :j]
    slot_ok = slot_cls < c
    slot_cls = slot_cls.clamp(max=c - 1)
    own = (cls_pix[:, None] == slot_cls[:, :, None, None]) & inreg[:, None] & slot_ok[:, :, None, None]
    masked = heat.gather(1, slot_cls[:, :, None, None].expand(b, j, h, w)) * own
    cand = nms_candidates(masked, kernel, threshold, top_k)
    ny, nx = cand["y"], cand["x"]
    nvalid = cand["valid"]
    nregion = regions.reshape(b, -1).gather(1, ny * w + nx)
    ncls = slot_cls.gather(1, cand["channel"])
    nscore = cand["score"]

    score_map = heat_at.clone()
    if cluster:
        cl = cluster_centers(offset, regions, heat_at, offset_threshold, cluster_area, beta,
                             cluster_min_center, max_clusters)
        # add a clustered center only far from every NMS center of its region
        d = torch.hypot((cl["y"][:, :, None] - ny[:, None, :]).float(),
                        (cl["x"][:, :, None] - nx[:, None, :]).float())
        same = (cl["region"][:, :, None] == nregion[:, None, :]) & nvalid[:, None, :]
        dmin = d.masked_fill(~same, float("inf")).amin(2)
        cvalid = cl["valid"] & (dmin > cluster_far)
        at = cl["y"] * w + cl["x"]
        mark = torch.where(cvalid, torch.ones_like(at, dtype=torch.float32),
                           torch.full_like(at, float("-inf"), dtype=torch.float32))
        score_map = score_map.reshape(b, -1).scatter_reduce(1, at, mark, "amax").reshape(b, h, w)
        cy, cx, cregion = cl["y"], cl["x"], cl["region"]
        ccls = cls_pix.reshape(b, -1).gather(1, at)
        cscore = torch.ones_like(cy, dtype=torch.float32)
    else:
        cy = cx = cregion = ccls = torch.zeros(b, 0, dtype=torch.long, device=dev)
        cvalid = torch.zeros(b, 0, dtype=torch.bool, device=dev)
        cscore = torch.zeros(b, 0, device=dev)

    cen_y = torch.cat([ny, cy], 1)
    cen_x = torch.cat([nx, cx], 1)
    cen_region = torch.cat([nregion, cregion], 1)
    cen_cls = torch.cat([ncls, ccls], 1)
    cen_valid = torch.cat([nvalid, cvalid], 1)
    is_cluster = torch.cat([torch.zeros_like(nvalid), torch.ones_like(cvalid)], 1)
    nscore = torch.cat([nscore, cscore], 1)
    # Keep the slots that hold a center (valid first, order kept), as many as the fullest
    # image needs: one host sync per batch, and grouping costs K x pixels.
    order = torch.argsort((~cen_valid).to(torch.uint8), dim=1, stable=True)
    k = max(1, int(cen_valid.sum(1).max()))
    order = order[:, :k]
    cen_y, cen_x, cen_region, cen_cls, cen_valid, is_cluster, nscore = (
        t.gather(1, order) for t in (cen_y, cen_x, cen_region, cen_cls, cen_valid, is_cluster, nscore))

    if max_per_region is not None:
        count = torch.zeros(b, n + 1, device=dev).scatter_add_(
            1, torch.where(cen_valid, cen_region, 0), cen_valid.float())
        crowded = count > max_per_region
        crowded[:, 0] = False
        cen_valid &= ~crowded.gather(1, cen_region)
        drop = crowded.gather(1, regions.reshape(b, -1)).reshape(b, h, w)
        regions = torch.where(drop, torch.zeros_like(regions), regions)

    inst = torch.zeros(b, h, w, dtype=torch.long, device=dev)
    centers_xy = torch.stack([cen_x, cen_y], 2).float()
    for i in range(b):
        inst[i] = group_pixels(offset[i], centers_xy[i],
                               center_group=torch.where(cen_valid[i], cen_region[i], -1),
                               pixel_group=torch.where(regions[i] > 0, regions[i], -1))

    # per-instance statistics (global slot = image * K + k; K*B is the "none" slot)
    g = torch.where(inst > 0, inst - 1 + (torch.arange(b, device=dev) * k).view(b, 1, 1), b * k).reshape(-1)
    fg = (inst > 0).reshape(-1)
    area = torch.zeros(b * k + 1, device=dev).scatter_add_(0, g, fg.float())
    sm = score_map.reshape(-1)
    best = torch.full((b * k + 1,), float("-inf"), device=dev).scatter_reduce(0, g, sm, "amax")
    flat_idx = torch.arange(b * n, device=dev)
    is_best = fg & (sm == best[g])
    first = torch.full((b * k + 1,), b * n, dtype=torch.long, device=dev).scatter_reduce(
        0, g, torch.where(is_best, flat_idx, b * n), "amin")
    first = first[:-1].clamp(max=b * n - 1) % n
    if own_prob is not None:
        p_own = own_prob.float().reshape(-1)
        seg_sum = torch.zeros(b * k + 1, device=dev).scatter_add_(0, g, p_own * fg)
        seg_score = (seg_sum[:-1] / area[:-1].clamp(min=1)).view(b, k)
    else:
        seg_score = torch.zeros(b, k, device=dev)
    area = area[:-1].view(b, k)
    valid = cen_valid & (area > 0)
    return {"instances": inst, "valid": valid, "classes": cen_cls, "region": cen_region,
            "center_y": cen_y, "center_x": cen_x,
            "peak_y": (first // w).view(b, k), "peak_x": (first % w).view(b, k),
            "center_score": torch.where(valid, best[:-1].view(b, k), torch.zeros_like(area)),
            "nms_score": nscore,
            "is_cluster": is_cluster, "area": area, "seg_score": seg_score,
            "regions": regions, "region_area": region_area, "score_map": score_map}


# ------------------------------------------------------------------------------------------
# inference
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_instances(outputs: dict, kernel: int = NMS_KERNEL, threshold: float = TEST_THRESHOLD,
                      top_k: int = 200, cluster: bool = True, min_area: int = MIN_REGION_AREA,
                      empty_regions: bool = True, labels=None, **cluster_opts) -> dict:
    """Instances of one image from the network outputs at the image's resolution.

    Args:
        outputs: ``semantic (C+1, H, W)`` logits, ``center (C, H, W)``, ``offset (2, H, W)``
            (a leading batch dimension of 1 is accepted).
        kernel, threshold, top_k: center NMS (official test values 41, 0.1; top-k 200 as in
            Panoptic-DeepLab).
        cluster: add clustered centers (official: on at test time too).
        min_area: predicted class regions smaller than this are dropped.
        empty_regions: a region with no center becomes one instance (official
            ``val_ignore=False``); False drops it.
        labels: optional ``(C,) bool`` image-level labels; class probabilities of absent
            classes are zeroed before the argmax (official ``val_clean``).
        **cluster_opts: ``offset_threshold``, ``cluster_area``, ``beta``,
            ``cluster_min_center``, ``cluster_far``, ``max_clusters``.

    Returns:
        dict of numpy arrays, highest score first: ``masks (K, H, W) bool``,
        ``classes (K,) int64`` (0-based), ``scores (K,) float32`` = center value (the highest
        heatmap value in the mask, clipped to [0, 1]; a clustered center counts 1) x mean class
        probability over the mask.
    """
    sem = outputs["semantic"].float()
    ctr = outputs["center"].float()
    off = outputs["offset"].float()
    if sem.dim() == 4:
        sem, ctr, off = sem[0], ctr[0], off[0]
    c1, h, w = sem.shape
    prob = sem.softmax(0)
    if labels is not None:
        keep = torch.cat([torch.ones(1, device=prob.device),
                          torch.as_tensor(np.asarray(labels, bool), device=prob.device).float()])
        prob = prob * keep.view(-1, 1, 1)

    cls_map = prob.argmax(0)
    cls_np = cls_map.cpu().numpy()
    present = np.zeros(c1 - 1, bool)
    present[np.unique(cls_np[cls_np > 0]) - 1] = True
    regions_np = component_map(cls_np, present)
    regions = torch.from_numpy(regions_np).to(sem.device)
    pixel_class = torch.where(regions > 0, cls_map - 1, -1)
    own = prob.gather(0, (pixel_class.clamp(min=0) + 1)[None])
    r = region_instances(ctr[None], off[None], regions[None], pixel_class[None], own,
                         kernel=kernel, threshold=threshold, top_k=top_k, cluster=cluster,
                         min_area=min_area, **cluster_opts)
    valid = r["valid"][0]
    inst = r["instances"][0]
    ids = torch.nonzero(valid).reshape(-1)
    masks = inst[None] == (ids + 1).view(-1, 1, 1)
    # a clustered center counts 1; as in the official code, values above 1 count 1 too (and
    # below 0, 0: raw heatmaps can be negative)
    center_score = torch.where(r["is_cluster"][0], 1.0, r["center_score"][0].clamp(0.0, 1.0))
    scores = (center_score * r["seg_score"][0])[ids]
    classes = r["classes"][0][ids]
    if empty_regions:
        kept = r["regions"][0]
        covered = torch.zeros(h * w + 1, dtype=torch.bool, device=sem.device)
        covered[kept.reshape(-1)[(inst > 0).reshape(-1)]] = True
        alive = torch.unique(kept[kept > 0])
        empty = alive[~covered[alive]]
        if empty.numel():
            emasks = kept[None] == empty.view(-1, 1, 1)
            flat = emasks.reshape(empty.numel(), -1).float()
            own = own[0].reshape(-1)
            heat_at = r["score_map"][0].reshape(-1)
            area = flat.sum(1).clamp(min=1)
            seg = (flat * own).sum(1) / area
            cmax = torch.where(flat > 0, heat_at[None], float("-inf")).amax(1)
            ecls = pixel_class.reshape(-1)[(emasks.reshape(empty.numel(), -1)).float().argmax(1)]
            masks = torch.cat([masks, emasks], 0)
            scores = torch.cat([scores, cmax.clamp(0.0, 1.0) * seg])
            classes = torch.cat([classes, ecls])
    order = torch.argsort(scores, descending=True, stable=True)
    return {"masks": masks[order].cpu().numpy(), "classes": classes[order].cpu().numpy().astype(np.int64),
            "scores": scores[order].cpu().numpy().astype(np.float32)}
