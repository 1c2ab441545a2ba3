"""From network outputs to instances: center NMS, center clustering and grouping (Eq. 1).

The trainer's network predicts a semantic map, a *class-wise* center heatmap (the paper's
change to Panoptic-DeepLab) and ``(dy, dx)`` offsets. Instances are read off them as in the
official BESTIE code, per *region*: a region is an 8-connected component of one class (of the
WSSS mask during self-refinement, of the predicted semantic map at inference).

1. **Center NMS** (:func:`bestie_train.centers.nms_candidates`, paper Sec. 3.2): a pixel is a center of class ``c`` when
   its heatmap value equals the maximum of the ``kernel x kernel`` window around it (41 in the
   official code) and exceeds ``threshold`` (0.1 at inference, 0.3 in self-refinement), at
   most ``top_k`` centers per image (highest first). Equal values inside one window (a
   plateau) are all kept, as in Panoptic-DeepLab. The heatmap of class ``c`` is zeroed outside
   the regions of class ``c`` first, so a center always lies inside a region of its class.
2. **Center clustering** (:func:`bestie_train.centers.cluster_centers`, supplementary material of the paper): the
   pixels whose predicted offset is shorter than 2.5 px form "low-displacement" areas (where
   offsets converge: the middle of an object). Each 4-connected area, within one region, whose
   size ``a`` satisfies ``21 - beta < a < 21 + beta`` (``beta = 3``) gives a clustered center at
   its centroid (coordinates floored), kept if the region's heatmap there exceeds 0.05 and
   added only if the region has no NMS center or every NMS center of the region is more than
   100 px away. A clustered center counts as a center of score 1.
3. **Grouping** (:func:`bestie_train.grouping.group_pixels`, Eq. 1): every pixel of a region joins the
   nearest center (of that region) to where its offset points.

Everything runs batched on the tensors' device; the only host synchronisations are two sizes
per call (the most classes, and the most centers, of one image), so self-refinement has no
per-instance sync.
Connected components are the caller's: training batches carry them (``components`` of
:mod:`bestie_train.data`); at inference :func:`predict_instances` makes them with the same
:func:`bestie_labels.algorithms.components.component_map` (8-connected: the transfer's
default; a prediction has no transfer options to follow).

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

from dataclasses import dataclass

import numpy as np
import torch

from bestie_labels.algorithms.components import component_map
from bestie_labels.core.constants import MIN_AREA

from .centers import (CLUSTER_AREA, CLUSTER_BETA, CLUSTER_FAR, CLUSTER_MIN_CENTER, NMS_KERNEL, OFFSET_THRESHOLD,
                      TEST_THRESHOLD, cluster_centers, nms_candidates)
from .grouping import group_pixels
from .regions import per_region_sum

# ------------------------------------------------------------------------------------------
# the shared pipeline: filter regions -> per-class NMS -> cluster centers -> compact ->
# group (Eq. 1) -> instance statistics, composed by :func:`region_instances`
# ------------------------------------------------------------------------------------------
@dataclass
class RegionInstances:
    """What :func:`region_instances` finds; ``K`` center slots per image (the most centers any
    image of the batch has).

    Attributes:
        instances: ``(B, H, W) int64``, 0 none, ``k + 1`` slot k.
        valid: ``(B, K) bool``, a center that got at least one pixel.
        classes, region: ``(B, K) int64`` class and region id of each center.
        center_y, center_x: ``(B, K) int64`` the center found.
        peak_y, peak_x: ``(B, K) int64`` the best pixel of the mask (highest heatmap, a
            clustered center counting 1).
        center_score: ``(B, K) float32`` the heatmap there (0 for an invalid slot).
        is_cluster: ``(B, K) bool`` a clustered center.
        seg_score: ``(B, K) float32`` mean probability of the class over the mask (0
            without ``own_prob``).
        regions: ``(B, H, W) int64`` the regions kept (0 elsewhere).
        score_map: ``(B, H, W) float32`` heatmap of each pixel's class, clustered centers 1.
    """

    instances: torch.Tensor
    valid: torch.Tensor
    classes: torch.Tensor
    region: torch.Tensor
    center_y: torch.Tensor
    center_x: torch.Tensor
    peak_y: torch.Tensor
    peak_x: torch.Tensor
    center_score: torch.Tensor
    is_cluster: torch.Tensor
    seg_score: torch.Tensor
    regions: torch.Tensor
    score_map: torch.Tensor


@dataclass
class _Centers:
    """``(B, K)`` center slots: position, region, class, score, validity, kind."""

    y: torch.Tensor
    x: torch.Tensor
    region: torch.Tensor
    cls: torch.Tensor
    score: torch.Tensor
    valid: torch.Tensor
    is_cluster: torch.Tensor

    def cat(self, other: "_Centers") -> "_Centers":
        return _Centers(*(torch.cat([getattr(self, f), getattr(other, f)], 1) for f in _CENTER_FIELDS))

    def take(self, order: torch.Tensor) -> "_Centers":
        return _Centers(*(getattr(self, f).gather(1, order) for f in _CENTER_FIELDS))


_CENTER_FIELDS = ("y", "x", "region", "cls", "score", "valid", "is_cluster")


def filter_regions(regions: torch.Tensor, pixel_class: torch.Tensor,
                   min_area: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop regions smaller than ``min_area`` pixels (and pixels without a class).

    Returns ``regions (B, H, W) int64`` (0 outside the kept regions), ``inreg (B, H, W) bool``
    and ``cls_pix (B, H, W) int64`` (each kept pixel's class, 0 elsewhere).
    """
    b, h, w = regions.shape
    inreg = (regions > 0) & (pixel_class >= 0)
    regions = torch.where(inreg, regions, torch.zeros_like(regions))
    region_area = per_region_sum(regions, inreg.float())
    region_area[:, 0] = 0
    inreg &= region_area.gather(1, regions.reshape(b, -1)).reshape(b, h, w) >= min_area
    regions = torch.where(inreg, regions, torch.zeros_like(regions))
    return regions, inreg, torch.where(inreg, pixel_class, torch.zeros_like(pixel_class))


def class_nms(heat: torch.Tensor, regions: torch.Tensor, inreg: torch.Tensor, cls_pix: torch.Tensor,
              kernel: int, threshold: float, top_k: int) -> _Centers:
    """Per-class center NMS, each class's heatmap masked to its own regions.

    Only the classes each image has regions of are searched: slot j of image i holds its j-th
    class (``J`` = most classes in one image; one host sync).
    """
    b, c, h, w = heat.shape
    dev = heat.device
    present = torch.zeros(b, c, device=dev).scatter_add_(
        1, cls_pix.reshape(b, -1), inreg.reshape(b, -1).float()) > 0
    j = max(1, int(present.sum(1).max()))
    slot_cls = torch.sort(torch.where(present, torch.arange(c, device=dev), c), dim=1).values[:, :j]
    slot_ok = slot_cls < c
    slot_cls = slot_cls.clamp(max=c - 1)
    own = (cls_pix[:, None] == slot_cls[:, :, None, None]) & inreg[:, None] & slot_ok[:, :, None, None]
    masked = heat.gather(1, slot_cls[:, :, None, None].expand(b, j, h, w)) * own
    cand = nms_candidates(masked, kernel, threshold, top_k)
    y, x = cand["y"], cand["x"]
    return _Centers(y, x, regions.reshape(b, -1).gather(1, y * w + x), slot_cls.gather(1, cand["channel"]),
                    cand["score"], cand["valid"], torch.zeros_like(cand["valid"]))


def clustered_centers(offset: torch.Tensor, regions: torch.Tensor, heat_at: torch.Tensor, cls_pix: torch.Tensor,
                      nms: _Centers, far: float, **cluster_opts) -> tuple[_Centers, torch.Tensor]:
    """Clustered centers (:func:`cluster_centers`) kept only more than ``far`` px from every
    NMS center of their region, and the score map: ``heat_at`` with kept clustered centers 1.
    """
    b, h, w = regions.shape
    cl = cluster_centers(offset, regions, heat_at, **cluster_opts)
    d = torch.hypot((cl["y"][:, :, None] - nms.y[:, None, :]).float(),
                    (cl["x"][:, :, None] - nms.x[:, None, :]).float())
    same = (cl["region"][:, :, None] == nms.region[:, None, :]) & nms.valid[:, None, :]
    valid = cl["valid"] & (d.masked_fill(~same, float("inf")).amin(2) > far)
    at = cl["y"] * w + cl["x"]
    mark = torch.where(valid, torch.ones_like(at, dtype=torch.float32),
                       torch.full_like(at, float("-inf"), dtype=torch.float32))
    score_map = heat_at.reshape(b, -1).scatter_reduce(1, at, mark, "amax").reshape(b, h, w)
    centers = _Centers(cl["y"], cl["x"], cl["region"], cls_pix.reshape(b, -1).gather(1, at),
                       torch.ones_like(cl["y"], dtype=torch.float32), valid, torch.ones_like(valid))
    return centers, score_map


def compact(centers: _Centers, regions: torch.Tensor,
            max_per_region: int | None) -> tuple[_Centers, torch.Tensor]:
    """Keep the slots that hold a center (valid first, order kept), as many as the fullest image
    needs (one host sync per batch: grouping costs K x pixels); with ``max_per_region``, drop
    the regions that have more centers, and their centers."""
    b, h, w = regions.shape
    order = torch.argsort((~centers.valid).to(torch.uint8), dim=1, stable=True)
    k = max(1, int(centers.valid.sum(1).max()))
    centers = centers.take(order[:, :k])
    if max_per_region is not None:
        count = torch.zeros(b, h * w + 1, device=regions.device).scatter_add_(
            1, torch.where(centers.valid, centers.region, 0), centers.valid.float())
        crowded = count > max_per_region
        crowded[:, 0] = False
        centers.valid = centers.valid & ~crowded.gather(1, centers.region)
        drop = crowded.gather(1, regions.reshape(b, -1)).reshape(b, h, w)
        regions = torch.where(drop, torch.zeros_like(regions), regions)
    return centers, regions


def group(offset: torch.Tensor, centers: _Centers, regions: torch.Tensor) -> torch.Tensor:
    """Eq. (1) per image: each region pixel joins the nearest valid center of its region.
    Returns ``(B, H, W) int64`` (0 none, ``k + 1`` slot k)."""
    b, h, w = regions.shape
    inst = torch.zeros(b, h, w, dtype=torch.long, device=regions.device)
    xy = torch.stack([centers.x, centers.y], 2).float()
    for i in range(b):
        inst[i] = group_pixels(offset[i], xy[i], center_group=torch.where(centers.valid[i], centers.region[i], -1),
                               pixel_group=torch.where(regions[i] > 0, regions[i], -1))
    return inst


def instance_statistics(inst: torch.Tensor, k: int, score_map: torch.Tensor,
                        own_prob: torch.Tensor | None) -> dict:
    """Per slot ``(B, K)``: ``area``, ``best`` (highest score-map value in the mask), ``peak_y``,
    ``peak_x`` (its first pixel in raster order) and ``seg_score`` (mean ``own_prob``)."""
    b, h, w = inst.shape
    n, dev = h * w, inst.device
    # global slot = image * K + k; K*B is the "none" slot
    g = torch.where(inst > 0, inst - 1 + (torch.arange(b, device=dev) * k).view(b, 1, 1), b * k).reshape(-1)
    fg = (inst > 0).reshape(-1)
    area = torch.zeros(b * k + 1, device=dev).scatter_add_(0, g, fg.float())
    sm = score_map.reshape(-1)
    best = torch.full((b * k + 1,), float("-inf"), device=dev).scatter_reduce(0, g, sm, "amax")
    is_best = fg & (sm == best[g])
    first = torch.full((b * k + 1,), b * n, dtype=torch.long, device=dev).scatter_reduce(
        0, g, torch.where(is_best, torch.arange(b * n, device=dev), b * n), "amin")
    first = first[:-1].clamp(max=b * n - 1) % n
    if own_prob is not None:
        seg_sum = torch.zeros(b * k + 1, device=dev).scatter_add_(0, g, own_prob.float().reshape(-1) * fg)
        seg_score = (seg_sum[:-1] / area[:-1].clamp(min=1)).view(b, k)
    else:
        seg_score = torch.zeros(b, k, device=dev)
    return {"area": area[:-1].view(b, k), "best": best[:-1].view(b, k), "peak_y": (first // w).view(b, k),
            "peak_x": (first % w).view(b, k), "seg_score": seg_score}


def region_instances(heat: torch.Tensor, offset: torch.Tensor, regions: torch.Tensor,
                     pixel_class: torch.Tensor, own_prob: torch.Tensor | None = None, *,
                     kernel: int = NMS_KERNEL, threshold: float = TEST_THRESHOLD, top_k: int = 200,
                     cluster: bool = True, max_clusters: int = 16, offset_threshold: float = OFFSET_THRESHOLD,
                     cluster_area: float = CLUSTER_AREA, beta: float = CLUSTER_BETA,
                     cluster_min_center: float = CLUSTER_MIN_CENTER, cluster_far: float = CLUSTER_FAR,
                     min_area: int = MIN_AREA, max_per_region: int | None = None) -> RegionInstances:
    """Centers (NMS + clustering) and Eq. (1) grouping inside class regions, batched.

    Args:
        heat: ``(B, C, H, W)`` center heatmaps; offset: ``(B, 2, H, W)`` (dy, dx).
        regions: ``(B, H, W)`` int64 region ids (0 none, ids <= H*W); each region is one class.
        pixel_class: ``(B, H, W)`` int64, the 0-based class of each region pixel (-1 outside).
        own_prob: optional ``(B, H, W)`` probability of each pixel's region class (for
            ``seg_score``; see :func:`bestie_train.regions.own_class_probability`).
        kernel, threshold, top_k: center NMS; cluster, max_clusters, offset_threshold,
        cluster_area, beta, cluster_min_center, cluster_far: center clustering (see module doc).
        min_area: regions smaller than this are dropped (official ``MINIMUM_MASK_SIZE``).
        max_per_region: regions with more centers than this are dropped (None: no limit).

    Returns:
        :class:`RegionInstances`.
    """
    heat = heat.float()
    dev = heat.device
    regions, inreg, cls_pix = filter_regions(regions.to(dev).long(), pixel_class.to(dev).long(), min_area)
    heat_at = heat.gather(1, cls_pix[:, None]).squeeze(1) * inreg  # heatmap of each pixel's class
    centers = class_nms(heat, regions, inreg, cls_pix, kernel, threshold, top_k)
    score_map = heat_at.clone()
    if cluster:
        extra, score_map = clustered_centers(
            offset, regions, heat_at, cls_pix, centers, cluster_far, offset_threshold=offset_threshold,
            area=cluster_area, beta=beta, min_center=cluster_min_center, max_clusters=max_clusters)
        centers = centers.cat(extra)
    centers, regions = compact(centers, regions, max_per_region)
    inst = group(offset, centers, regions)
    k = centers.y.shape[1]
    stats = instance_statistics(inst, k, score_map, own_prob)
    valid = centers.valid & (stats["area"] > 0)
    return RegionInstances(
        instances=inst, valid=valid, classes=centers.cls, region=centers.region, center_y=centers.y,
        center_x=centers.x, peak_y=stats["peak_y"], peak_x=stats["peak_x"],
        center_score=torch.where(valid, stats["best"], torch.zeros_like(stats["area"])),
        is_cluster=centers.is_cluster, seg_score=stats["seg_score"], regions=regions, score_map=score_map)


# ------------------------------------------------------------------------------------------
# inference
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_instances(outputs: dict, kernel: int = NMS_KERNEL, threshold: float = TEST_THRESHOLD,
                      top_k: int = 200, cluster: bool = True, min_area: int = MIN_AREA,
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
    valid = r.valid[0]
    inst = r.instances[0]
    ids = torch.nonzero(valid).reshape(-1)
    masks = inst[None] == (ids + 1).view(-1, 1, 1)
    # a clustered center counts 1; as in the official code, values above 1 count 1 too (and
    # below 0, 0: raw heatmaps can be negative)
    center_score = torch.where(r.is_cluster[0], 1.0, r.center_score[0].clamp(0.0, 1.0))
    scores = (center_score * r.seg_score[0])[ids]
    classes = r.classes[0][ids]
    if empty_regions:
        kept = r.regions[0]
        covered = torch.zeros(h * w + 1, dtype=torch.bool, device=sem.device)
        covered[kept.reshape(-1)[(inst > 0).reshape(-1)]] = True
        alive = torch.unique(kept[kept > 0])
        empty = alive[~covered[alive]]
        if empty.numel():
            emasks = kept[None] == empty.view(-1, 1, 1)
            flat = emasks.reshape(empty.numel(), -1).float()
            own = own[0].reshape(-1)
            heat_at = r.score_map[0].reshape(-1)
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
