"""Built-in weakly-supervised semantic segmentation baseline from plain CAMs.

``cam_to_mask`` turns normalised class activation maps into a class mask: the background gets
a constant score ``bg_threshold`` and every pixel takes the arg-max over [background, classes of
the image-level label]. With ``crf=True`` the result is refined by a fully connected CRF from
`pydensecrf <https://github.com/lucasb-eyer/pydensecrf>`_ when that package is installed (it is
not a dependency of this project).

This is a baseline: a stronger WSSS method (PMM, IRN, ...) imported with ``wsss --import``
gives better instances (paper Table 4).
"""

from __future__ import annotations

import numpy as np

from ..errors import BestieError

#: Default background score for activation maps divided by their max: a pixel is background
#: unless some labelled class reaches 30% of its peak there. Chosen on the demo data (train
#: split, tiny classifier with PAM disabled at inference): mIoU 0.66 / 0.72 / 0.79 / 0.78 / 0.71
#: at 0.15 / 0.2 / 0.3 / 0.4 / 0.5. Real photos may want a lower value (IRN-style CAM
#: baselines use about 0.15-0.25); pass ``bg_threshold``.
DEFAULT_BG_THRESHOLD = 0.3


def crf_available() -> bool:
    """True when ``pydensecrf`` can be imported."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def cam_to_mask(maps, labels, bg_threshold: float = DEFAULT_BG_THRESHOLD, image: np.ndarray | None = None,
                crf: bool = False, crf_iters: int = 10) -> np.ndarray:
    """Class mask from normalised activation maps.

    Args:
        maps: ``(C, H, W)`` float in about [0, 1] (numpy or torch).
        labels: ``(C,) bool`` image-level label; only these classes can win.
        bg_threshold: constant background score.
        image: ``(H, W, 3) uint8`` RGB, needed for ``crf=True``.
        crf: refine with a dense CRF (needs ``pydensecrf``; a BestieError if missing).
        crf_iters: mean-field iterations of the CRF.

    Returns:
        ``(H, W) uint8``: 0 background, ``k + 1`` for class k.
    """
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, np.float32)
    labels = np.asarray(labels, bool)
    if maps.ndim != 3 or labels.shape != (maps.shape[0],):
        raise ValueError(f"maps (C,H,W) and labels (C,) expected, got {maps.shape} and {labels.shape}")
    cls = np.flatnonzero(labels)
    h, w = maps.shape[1:]
    if cls.size == 0:
        return np.zeros((h, w), np.uint8)
    scores = np.concatenate([np.full((1, h, w), bg_threshold, np.float32), maps[cls]], axis=0)
    if crf:
        if image is None:
            raise ValueError("crf=True needs the image")
        scores = _crf(image, scores, crf_iters)
    lut = np.concatenate([[0], cls + 1]).astype(np.uint8)
    return lut[np.argmax(scores, axis=0)]


def _crf(image: np.ndarray, scores: np.ndarray, iters: int) -> np.ndarray:
    """Dense-CRF posterior ``(L, H, W)`` from scores ``(L, H, W)`` (pydensecrf)."""
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError:
        raise BestieError("--crf needs the pydensecrf package, which is not installed") from None
    n, h, w = scores.shape
    # Scores are in [0, 1]; a softmax with temperature turns them into label probabilities.
    e = np.exp((scores - scores.max(0, keepdims=True)) * 10.0)
    prob = (e / e.sum(0, keepdims=True)).astype(np.float32)
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(prob)))
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=50, srgb=13, rgbim=np.ascontiguousarray(image), compat=10)
    return np.asarray(d.inference(iters), np.float32).reshape(n, h, w)
