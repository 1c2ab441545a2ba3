"""Online self-refinement (paper Sec. 3.5): refined instance targets from the network's own
outputs, every mini-batch.

For each image of the batch, from the *detached* outputs:

* ``sup="cls"`` (image-level labels): inside every WSSS region (connected component of an
  image-level class, at least 50 px; ``components`` of the batch) the center heatmap of the
  region's class gives centers by NMS (window 41, value > 0.3), completed by center clustering
  (see :mod:`bestie_train.postprocess`); a region with more than 5 centers is skipped (its
  instances are too uncertain); the region's pixels are grouped to its centers by Eq. (1).
  Each refined instance ``n`` gets its center at the best pixel of its mask (highest heatmap
  value, a clustered center counting 1), ``score_n`` = that value, and the soft weight of
  Eq. (2) ``W_n = clip(score_n x mean class probability over the mask, 0, 1)`` on its pixels.
  As in the official code, an instance whose best value is below the NMS threshold (its mask
  does not contain a confident center) is centred at its region's centroid and weighted by the
  mean class probability alone.
* ``sup="point"``: the labelled points are the centers: every pixel of an image-level class in
  the WSSS mask is grouped, by Eq. (1), to the points of its class; the refined center map is
  the Gaussians of the points (the ground-truth center map) and the weight is 1 on grouped
  pixels.

The refined maps are then drawn by :func:`bestie_train.targets.make_targets` (Gaussian at the
center, offsets to it). Everything stays on the outputs' device; there is no host
synchronisation per instance (one per batch, to list the classes present).

Batch fields read (from :func:`bestie_train.data.collate`): ``wsss (B, H, W) int64`` (0
background, k + 1 class k, 255 void), ``components (B, H, W) int64`` (connected components of
each image-level class, ids ``1..M`` per image, 0 elsewhere), ``labels (B, C)`` image-level
labels, and for ``sup="point"`` ``points (B, P, 2) float`` (x, y in the crop) and
``point_classes (B, P) int64`` (-1 = padding).
"""

from __future__ import annotations

import torch

from bestie_labels.core.constants import MIN_AREA

from .centers import CLUSTER_AREA, CLUSTER_BETA, CLUSTER_FAR, CLUSTER_MIN_CENTER, NMS_KERNEL, OFFSET_THRESHOLD
from .grouping import group_pixels
from .postprocess import region_instances
from .regions import own_class_probability, per_region_sum
from .targets import make_targets

#: Official self-refinement values (clovaai/BESTIE: --refine_thresh, utils MAXIMUM_NUM_INST).
REFINE_THRESHOLD = 0.3
MAX_INSTANCES = 5


def _labelled_class(wsss: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` 0-based class of each WSSS pixel of an image-level class, else -1."""
    c = labels.shape[1]
    k = wsss.long() - 1
    inside = (k >= 0) & (k < c)
    kk = k.clamp(0, c - 1)
    on = labels.bool().gather(1, kk.reshape(kk.shape[0], -1)).reshape(kk.shape)
    return torch.where(inside & on, k, torch.full_like(k, -1))


@torch.no_grad()
def refine_targets(outputs: dict, batch: dict, *, sup: str = "cls", cluster: bool = True, sigma: float = 6.0,
                   kernel: int = NMS_KERNEL, threshold: float = REFINE_THRESHOLD, top_k: int = 64,
                   max_instances: int = MAX_INSTANCES, min_area: int = MIN_AREA,
                   max_clusters: int = 16, offset_threshold: float = OFFSET_THRESHOLD,
                   cluster_area: float = CLUSTER_AREA, beta: float = CLUSTER_BETA,
                   cluster_min_center: float = CLUSTER_MIN_CENTER, cluster_far: float = CLUSTER_FAR) -> dict:
    """Refined center / offset / weight targets of a mini-batch.

    Args:
        outputs: network outputs ``semantic (B, C+1, H, W)``, ``center (B, C, H, W)``,
            ``offset (B, 2, H, W)`` (detached or not: nothing here is differentiated).
        batch: the training batch (fields in the module docstring), on any device.
        sup: ``"cls"`` (predicted centers) or ``"point"`` (labelled points as centers).
        cluster: add clustered centers (``--no-cluster`` ablation when False).
        sigma: Gaussian sigma of the refined center map.
        kernel, threshold, top_k: center NMS (official 41, 0.3; ``top_k`` caps candidates per
            image); max_instances: regions with more centers are skipped (official 5);
        min_area: smaller regions are skipped (official 50); the remaining keywords: center
            clustering (see :func:`bestie_train.centers.cluster_centers`).

    Returns:
        dict on the outputs' device: ``center (B, C, H, W) float32``, ``offset (B, 2, H, W)
        float32`` (dy, dx), ``weight (B, H, W) float32`` (Eq. 2; 0 outside refined instances).
    """
    center, offset, semantic = outputs["center"].float(), outputs["offset"].float(), outputs["semantic"]
    dev = center.device
    b, c, h, w = center.shape
    wsss = batch["wsss"].to(dev)
    labels = batch["labels"].to(dev)
    pixel_class = _labelled_class(wsss, labels)
    if sup == "point":
        return _point_targets(offset, pixel_class, batch["points"].to(dev), batch["point_classes"].to(dev),
                              labels, c, sigma)
    if sup != "cls":
        raise ValueError(f"sup must be 'cls' or 'point', got {sup!r}")

    regions = batch["components"].to(dev).long()
    own = own_class_probability(semantic, pixel_class)
    r = region_instances(center, offset, regions, pixel_class, own, kernel=kernel, threshold=threshold,
                         top_k=top_k, cluster=cluster, max_clusters=max_clusters,
                         offset_threshold=offset_threshold, cluster_area=cluster_area, beta=beta,
                         cluster_min_center=cluster_min_center, cluster_far=cluster_far,
                         min_area=min_area, max_per_region=max_instances)
    valid = r.valid
    score = r.center_score
    seg = r.seg_score
    # region centroids (floored), the fallback center of an instance without a confident peak
    reg = r.regions
    ones = (reg > 0).float()
    ys = torch.arange(h, device=dev, dtype=torch.float32).view(1, h, 1).expand(b, h, w)
    xs = torch.arange(w, device=dev, dtype=torch.float32).view(1, 1, w).expand(b, h, w)
    cnt = per_region_sum(reg, ones).clamp(min=1)
    gy = torch.floor(per_region_sum(reg, ys * ones) / cnt).gather(1, r.region)
    gx = torch.floor(per_region_sum(reg, xs * ones) / cnt).gather(1, r.region)
    weak = score < threshold
    cy = torch.where(weak, gy, r.peak_y.float())
    cx = torch.where(weak, gx, r.peak_x.float())
    conf = torch.where(weak, seg, score * seg).clamp(0.0, 1.0) * valid
    centers = torch.stack([cx, cy], 2)
    classes = r.classes.clamp(min=0)
    inst = r.instances
    outs = [make_targets(inst[i], centers[i], classes[i], c, sigma) for i in range(b)]
    table = torch.cat([torch.zeros(b, 1, device=dev), conf], 1)
    weight = table.gather(1, inst.reshape(b, -1)).reshape(b, h, w)
    return {"center": torch.stack([o["center"] for o in outs]),
            "offset": torch.stack([o["offset"] for o in outs]),
            "weight": weight}


def _point_targets(offset: torch.Tensor, pixel_class: torch.Tensor, points: torch.Tensor,
                   point_classes: torch.Tensor, labels: torch.Tensor, num_classes: int, sigma: float) -> dict:
    """``sup="point"``: group each labelled-class WSSS pixel to the points of its class."""
    b, _, h, w = offset.shape
    dev = offset.device
    pts = points.float()
    pcls = point_classes.long()
    x0, y0 = torch.round(pts[..., 0]), torch.round(pts[..., 1])
    on = labels.bool().gather(1, pcls.clamp(min=0)) & (pcls >= 0)
    ok = on & (x0 >= 0) & (x0 < w) & (y0 >= 0) & (y0 < h)
    cgroup = torch.where(ok, pcls, torch.full_like(pcls, -1))
    center, off, weight = [], [], []
    for i in range(b):
        ids = group_pixels(offset[i], pts[i], center_group=cgroup[i], pixel_group=pixel_class[i])
        t = make_targets(ids, pts[i], pcls[i].clamp(min=0), num_classes, sigma)
        # the ground-truth center map: a one-pixel "instance" at every usable point
        at = (y0[i].clamp(0, h - 1) * w + x0[i].clamp(0, w - 1)).long()
        idx = torch.arange(1, pts.shape[1] + 1, device=dev) * ok[i]
        dots = torch.zeros(h * w, dtype=torch.long, device=dev).scatter_reduce(0, at, idx, "amax")
        g = make_targets(dots.view(h, w), pts[i], pcls[i].clamp(min=0), num_classes, sigma)
        center.append(g["center"])
        off.append(t["offset"])
        weight.append(t["weight"])
    return {"center": torch.stack(center), "offset": torch.stack(off), "weight": torch.stack(weight)}
