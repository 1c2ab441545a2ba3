"""Inference: load a trained classifier, compute normalised activation maps of one image.

Follows the official ``PAM/point_extraction.py``: the image (resized so that its shorter side is
the checkpoint's ``test_size``: the training crop size, 224 for the tiny demo recipe) and its horizontal flip go through the network; each map is ReLU'd,
upsampled (bilinear) to the original image size and divided by its own maximum (+1e-5); the two
views are averaged. Classes absent from the image-level label are zero. (The official script
then smooths the maps with a 3x3 mean before its peak search; here that is the first step of
:func:`bestie_labels.classifier.peaks.extract_peaks`.)
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from ..core.errors import BestieError
from .model import PAMClassifier, build_classifier
from .pam import pam_disabled

_MEAN = np.array(IMAGENET_MEAN, np.float32)
_STD = np.array(IMAGENET_STD, np.float32)


def resize_short(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize ``(H, W, 3) uint8`` so that its shorter side is ``size`` (None: unchanged)."""
    if not size:
        return image
    h, w = image.shape[:2]
    s = size / min(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    if (nh, nw) == (h, w):
        return image
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` RGB -> ``(3, H, W) float32`` normalised with the ImageNet mean/std."""
    x = (image.astype(np.float32) / 255.0 - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def load_classifier(checkpoint: str | os.PathLike, device: str | torch.device = "cpu",
                    num_classes: int | None = None) -> tuple[PAMClassifier, dict[str, Any]]:
    """Rebuild the classifier saved by ``train-pam``, or the official ``PAM.pth``.

    Args:
        checkpoint: path of the ``.pt`` / ``.pth`` file (kind recognised from its keys, see
            :mod:`bestie_labels.classifier.official`).
        device: where to put the model (``"cpu"`` or ``"cuda"``).
        num_classes: when given, a checkpoint for another number of classes is a BestieError.

    Returns:
        ``(model, meta)``: the model in eval mode on ``device``, with ``model.test_size`` set to
        the shorter-side size used at inference (options ``test_size``, else ``crop_size``); ``meta`` is a dict with ``options``,
        ``class_names``, ``epoch``, ``history`` and ``path``.
    """
    from .official import read_classifier_checkpoint

    ck = read_classifier_checkpoint(checkpoint, num_classes=num_classes)
    opts = ck["options"]
    n = len(ck["class_names"])
    if num_classes is not None and int(num_classes) != n:
        raise BestieError(f"checkpoint is for {n} classes ({', '.join(ck['class_names'])}) but the "
                          f"dataset has {num_classes}", checkpoint)
    model = build_classifier(opts["backbone"], n, pam=opts.get("pam", True), alpha=opts.get("alpha", 0.7),
                             output_stride=opts.get("output_stride", 16))
    try:
        model.load_state_dict(ck["model"], strict=True)
    except RuntimeError as e:
        raise BestieError(f"checkpoint weights do not fit the {opts['backbone']} classifier "
                          f"({str(e).splitlines()[0]})", checkpoint) from None
    model.test_size = opts.get("test_size") or opts.get("crop_size")
    model.eval().to(device)
    meta = {"options": dict(opts), "class_names": list(ck["class_names"]), "epoch": ck.get("epoch"),
            "history": ck.get("history", []), "path": os.fspath(checkpoint)}
    return model, meta


@torch.no_grad()
def activation_maps(model: PAMClassifier, image: np.ndarray, labels, device: str | torch.device | None = None,
                    pam: bool = True, input_size: int | None = None, scales=(1.0,)) -> np.ndarray:
    """Normalised activation maps of one image, with flip (and multi-scale) test-time augmentation.

    Args:
        model: a classifier from :func:`load_classifier` (eval mode).
        image: ``(H, W, 3) uint8`` RGB.
        labels: ``(C,) bool`` image-level label.
        device: where to run (None: where the model is).
        pam: False runs the network with its PAM modules disabled (plain CAM, ``--method cam``).
        input_size: shorter side the image is resized to before the network (None:
            ``model.test_size`` if set, else the image's own size).
        scales: factors of that shorter side, one forward pass (image and flip) each, as IRN's
            ``make_cam`` (1.0, 0.5, 1.5, 2.0); every view's map is normalised by its own maximum
            and the views are averaged, so ``(1.0,)`` is the official single-scale extraction.

    Returns:
        ``(C, H, W) float32`` in [0, 1]: zero for classes not in ``labels``.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    scales = check_scales(scales)
    h, w = image.shape[:2]
    labels = np.asarray(labels, bool)
    c = model.num_classes
    if labels.shape != (c,):
        raise ValueError(f"labels must be ({c},), got {labels.shape}")
    out = np.zeros((c, h, w), np.float32)
    cls = np.flatnonzero(labels)
    if cls.size == 0:
        return out
    if device is None:
        device = next(model.parameters()).device
    size = input_size if input_size is not None else getattr(model, "test_size", None)
    total = 0
    for s in scales:
        total = total + _one_scale(model, image, cls, device, pam, max(1, round((size or min(h, w)) * s)))
    out[cls] = (total / len(scales)).float().cpu().numpy()
    return out


def check_scales(scales) -> tuple[float, ...]:
    """``scales`` (numbers, or their comma-separated text as ``"1,0.5,1.5,2"``) as a non-empty
    tuple of positive floats, else ``ValueError``."""
    if isinstance(scales, str):
        try:
            scales = [float(t) for t in scales.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"scales must be comma-separated numbers, got {scales!r}") from None
    scales = tuple(float(s) for s in np.atleast_1d(np.asarray(scales, np.float64)))
    if not scales or not all(np.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scales}")
    return scales


def _one_scale(model: PAMClassifier, image: np.ndarray, cls: np.ndarray, device, pam: bool,
               size: int) -> torch.Tensor:
    """``(K, H, W)`` mean over the image and its flip of the ReLU'd maps of classes ``cls``, at
    shorter side ``size``, upsampled to the image and each divided by its maximum (+1e-5)."""
    h, w = image.shape[:2]
    x = to_tensor(resize_short(image, size)).to(device)
    x = torch.stack([x, x.flip(-1)])
    if pam:
        cam = model.cam(x)
    else:
        with pam_disabled(model):
            cam = model.cam(x)
    cam = torch.relu(cam[:, torch.as_tensor(cls, device=cam.device)])
    cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)
    cam = cam / (cam.amax(dim=(2, 3), keepdim=True) + 1e-5)
    return (cam[0] + cam[1].flip(-1)) / 2
