"""Image-level classification quality: average precision per class and its mean over a split."""

from __future__ import annotations

import numpy as np
import torch

from .maps import resize_short, to_tensor
from .model import PAMClassifier


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of ``(N,) float`` scores for ``(N,) bool`` targets.

    The area under the step precision-recall curve, thresholds at distinct scores (tied scores
    form one step), as ``sklearn.metrics.average_precision_score``. NaN without positives.
    """
    scores = np.asarray(scores, np.float64).ravel()
    targets = np.asarray(targets, bool).ravel()
    npos = int(targets.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], targets[order]
    tp = np.cumsum(t)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # end of each tie group
    tp = tp[last]
    precision = tp / (last + 1)
    recall = tp / npos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes (with at least one positive) of :func:`average_precision`.

    ``scores (N, C) float``, ``targets (N, C) bool``; NaN if no class has a positive.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, bool)
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1]) if targets[:, k].any()]
    return float(np.mean(aps)) if aps else float("nan")


@torch.no_grad()
def predict_scores(model: PAMClassifier, ds, size: int | None, device) -> tuple[np.ndarray, np.ndarray]:
    """Image-level sigmoid scores ``(N, C) float32`` and labels ``(N, C) bool`` of a split
    (each image resized so its shorter side is ``size``)."""
    model.eval()
    scores = np.zeros((len(ds.records), model.num_classes), np.float32)
    for i, rec in enumerate(ds.records):
        x = to_tensor(resize_short(ds.load_image(rec), size))[None].to(device)
        scores[i] = torch.sigmoid(model(x))[0].float().cpu().numpy()
    labels = np.stack([r.labels for r in ds.records]).astype(bool) if ds.records else np.zeros((0, model.num_classes), bool)
    return scores, labels
