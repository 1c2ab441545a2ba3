"""IRN inference: class mask by random walk of CAMs within learned boundaries, instances cut apart.

Per image (IRN's ``make_sem_seg_labels`` plus the cut):

1. the classifier's CAMs (PAM off, flip TTA) of the labelled classes, resized to the boundary
   map's grid (stride 4 of the classifier's inference size);
2. the boundary map ``B`` (flip TTA: mean of the logits, then sigmoid);
3. ``random_walk(CAM * (1 - B))`` with the affinities of ``B`` within ``radius`` (IRN: 5),
   ``beta`` 10, ``2^exp_times`` steps; resized to the image and divided by its maximum;
4. arg-max over ``[bg_score, propagated maps]`` (IRN: ``sem_seg_bg_thres`` 0.25);
5. instances cut apart (:func:`cut_instances`): in each class region, the parts where ``B`` is
   below ``cut_threshold`` seed a watershed of ``B`` restricted to the region, and the
   watershed lines between two parts become ignore (255), so that touching instances of a
   class are separate connected components for the semantic knowledge transfer;
6. with ``peak_split``, each component of a class that holds several peaks of the classifier's
   PAM maps (the instance cues, found as ``cues --method pam`` finds them) is cut between the
   peaks by a watershed of ``PAM map - boundary`` (3-pixel ignore lines).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..classifier.maps import activation_maps, resize_short, to_tensor
from ..classifier.peaks import extract_peaks
from .affinity import boundary_to_affinity
from .data import PEAK_KERNEL, PEAK_MIN_CONF, PEAK_TOPK
from ..core.constants import VOID
from .random_walk import random_walk
from .seeds import split_at_peaks
from .watershed import watershed_split

#: The cut lines between instances and the unassigned pixels of a class mask: the void value.
IGNORE = VOID


@dataclass(frozen=True)
class IrnParams:
    """Inference settings (recorded in the wsss store's options)."""

    radius: int = 5
    beta: float = 10.0
    exp_times: int = 8
    bg_score: float = 0.25
    cut_threshold: float = 0.5
    min_part: int = 20
    peak_split: bool = True
    #: factors of the classifier's inference size for the CAMs the random walk propagates
    #: (IRN: 1.0, 0.5, 1.5, 2.0); the PAM maps of the peak split stay single-scale.
    cam_scales: tuple = (1.0,)


@torch.no_grad()
def boundary_map(net, image: np.ndarray, size: int | None, device="cpu") -> torch.Tensor:
    """``(h, w) float32`` boundary probabilities on the stride-4 grid of ``image`` resized so its
    shorter side is ``size`` (flip test-time augmentation as IRN)."""
    x = to_tensor(resize_short(image, size)).to(device)
    logits = net(torch.stack([x, x.flip(-1)]))
    return torch.sigmoid(logits[0] / 2 + logits[1].flip(-1) / 2)


def cut_instances(mask: np.ndarray, boundary: np.ndarray, threshold: float, min_part: int) -> np.ndarray:
    """Cut each class region of ``mask`` along the boundary map.

    Args:
        mask: ``(H, W) uint8`` class mask (0 background, k + 1 class k, 255 ignore).
        boundary: ``(H, W) float`` in [0, 1] at the same size.
        threshold: parts of a region where ``boundary < threshold`` are the watershed markers.
        min_part: markers with fewer pixels are dropped (their pixels are flooded from others).

    Returns:
        ``(H, W) uint8``: ``mask`` with the watershed lines between two markers of one region set
        to 255; a region with at most one marker is unchanged.
    """
    out = mask.copy()
    for v in np.unique(mask):
        if v in (0, IGNORE):
            continue
        region = mask == v
        n, parts = cv2.connectedComponents((region & (boundary < threshold)).view(np.uint8), connectivity=4)
        area = np.bincount(parts.ravel(), minlength=n)
        keep = area >= min_part
        keep[0] = False
        if keep.sum() < 2:
            continue
        lut = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
        # The lines leave no 8-adjacent pair of parts: the transfer's 8-connected components
        # cannot cross them diagonally.
        flood = watershed_split(boundary, lut[parts], region)
        out[region & (flood == 0)] = IGNORE
    return out


def irn_class_mask(classifier, net, image: np.ndarray, labels, params: IrnParams = IrnParams(),
                   device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Class mask of one image; returns ``(mask (H, W) uint8, boundary (H, W) float32)``.

    ``mask``: 0 background, ``k + 1`` class k, 255 cut lines (see the module docstring).
    """
    labels = np.asarray(labels, bool)
    h, w = image.shape[:2]
    edge = boundary_map(net, image, getattr(classifier, "test_size", None), device)
    edge_up = F.interpolate(edge[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    edge_np = edge_up.clamp(0, 1).cpu().numpy()
    cls = np.flatnonzero(labels)
    if cls.size == 0:
        return np.zeros((h, w), np.uint8), edge_np
    maps = activation_maps(classifier, image, labels, device, pam=False, scales=params.cam_scales)[cls]
    cams = torch.from_numpy(maps).to(edge.device)[None]
    cams = F.interpolate(cams, size=edge.shape, mode="bilinear", align_corners=False, antialias=True)[0]
    aff = boundary_to_affinity(edge[None], params.radius)[0]
    rw = random_walk(cams * (1 - edge), aff, params.radius, params.beta, params.exp_times)
    rw = F.interpolate(rw[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    rw = rw / (rw.max() + 1e-5)
    scores = torch.cat([torch.full((1, h, w), params.bg_score, dtype=rw.dtype, device=rw.device), rw])
    lut = np.concatenate([[0], cls + 1]).astype(np.uint8)
    mask = lut[scores.argmax(0).cpu().numpy()]
    if params.cut_threshold < 1:
        mask = cut_instances(mask, edge_np, params.cut_threshold, params.min_part)
    if params.peak_split:
        pam = activation_maps(classifier, image, labels, device, pam=True)
        peaks = extract_peaks(pam, labels, kernel=PEAK_KERNEL, topk=PEAK_TOPK, min_conf=PEAK_MIN_CONF)
        mask = split_mask_at_peaks(mask, peaks, pam - edge_np[None])
    return mask, edge_np


def split_mask_at_peaks(mask: np.ndarray, peaks: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Cut every 8-connected component of a class holding several peaks of that class.

    Args:
        mask: ``(H, W) uint8`` class mask; peaks: ``(N, 4)`` rows ``x, y, cls, conf``;
        maps: ``(C, H, W)`` elevation (high inside an instance), e.g. PAM map - boundary.

    Returns:
        ``mask`` with 3-pixel-wide watershed lines (255) between the parts of each such
        component (see :func:`~bestie_labels.irn.seeds.split_at_peaks`).
    """
    regions = np.zeros(mask.shape, np.int32)
    next_id = 1
    for v in np.unique(mask):
        if v in (0, IGNORE):
            continue
        n, comp = cv2.connectedComponents((mask == v).view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        sel = comp > 0
        regions[sel] = comp[sel] + next_id - 1
        next_id += n - 1
    regions[mask == IGNORE] = -1
    split = split_at_peaks(regions, peaks, maps, band=1)
    out = mask.copy()
    out[(split == -1) & (regions > 0)] = IGNORE
    return out
