"""Instance cues: local maxima of normalised activation maps (official ``point_extraction.py``).

``extract_peaks`` smooths each class map with a 3x3 mean, keeps the pixels that equal the
maximum of their ``kernel x kernel`` neighbourhood, takes the ``topk`` strongest per class and
drops those below ``min_conf``; only classes of the image-level label are searched.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def extract_peaks(maps, labels, kernel: int = 15, topk: int = 25, min_conf: float = 0.1,
                  smooth: int = 3) -> np.ndarray:
    """Peak points of activation maps.

    Args:
        maps: ``(C, H, W)`` float (numpy or torch, any device), normalised to about [0, 1].
        labels: ``(C,) bool`` image-level label; other classes give no peak.
        kernel: odd side of the max-pool window (peaks are at least ``kernel // 2 + 1`` pixels
            apart in x or y unless tied).
        topk: at most this many peaks per class.
        min_conf: keep peaks whose (smoothed) value is ``>= min_conf`` (and > 0).
        smooth: odd side of the mean filter applied first (1 = none); zero padding, as the
            official code.

    Returns:
        ``(N, 4) float32`` rows ``[x, y, cls, conf]`` (pixel coordinates, 0-based class),
        ordered by class, then by decreasing confidence.
    """
    if kernel < 1 or kernel % 2 == 0 or smooth < 1 or smooth % 2 == 0:
        raise ValueError(f"kernel ({kernel}) and smooth ({smooth}) must be odd and >= 1")
    heat = torch.as_tensor(maps).float()
    if heat.ndim != 3:
        raise ValueError(f"maps must be (C, H, W), got shape {tuple(heat.shape)}")
    lab = torch.as_tensor(np.asarray(labels, bool), device=heat.device)
    c, h, w = heat.shape
    if lab.shape != (c,):
        raise ValueError(f"labels must be ({c},), got {tuple(lab.shape)}")
    cls_idx = torch.nonzero(lab).flatten()
    if cls_idx.numel() == 0 or h * w == 0:
        return np.zeros((0, 4), np.float32)
    heat = heat[cls_idx][None]  # (1, C', H, W)
    if smooth > 1:
        heat = F.avg_pool2d(heat, smooth, stride=1, padding=smooth // 2)
    hmax = F.max_pool2d(heat, kernel, stride=1, padding=kernel // 2)
    peak = torch.where(hmax == heat, heat, torch.zeros((), device=heat.device))[0]
    k = min(int(topk), h * w)
    conf, idx = torch.topk(peak.reshape(len(cls_idx), -1), k, dim=1)  # sorted, descending
    keep = (conf >= min_conf) & (conf > 0)
    cls = cls_idx[:, None].expand_as(idx)
    out = torch.stack([(idx % w).float(), (idx // w).float(), cls.float(), conf], dim=-1)[keep]
    return out.cpu().numpy().astype(np.float32)
