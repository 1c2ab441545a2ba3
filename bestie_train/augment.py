"""Training-time augmentation as pure functions: geometry (resize, scale, crop/pad, flip) and
photometric distortion.

Two recipes share these pieces (:class:`bestie_train.data.TrainData` picks one):

* the *paper recipe* (ResNet / HRNet), as the official BESTIE loader: photometric distortion,
  then a resize of the long side to ``crop + 64`` snapped down to ``32 k + 1`` (449 for crop 416)
  with both sides snapped to ``32 k + 1`` (:func:`official_resize_shape`), a random scale from
  0.7, 0.8, ..., 1.3, a ``crop x crop`` window at a random position (an image smaller than the
  crop lands at a random position on a padded canvas), and a flip with probability 1/2;
* the *CPU recipe* (``tiny``): a uniform random scale ``U(0.7, 1.3)`` of the original image, the
  same crop and flip, no photometric distortion.

The resize and the random scale are composed into one resize (one interpolation instead of
two). Coordinates map pixel centres: ``x' = (x + 0.5) * s - 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def official_resize_shape(height: int, width: int, size: int, factor: int = 32) -> tuple[int, int]:
    """The output ``(height, width)`` of the official loader's ``Resize(size, size, factor)``.

    The shorter side goes to ``size`` unless the longer side would then exceed ``size`` snapped
    down to ``factor k + 1``; then the longer side goes to that value. Both sides are finally
    rounded up to ``factor k + 1`` (and down again when that exceeds the maximum).
    For a VOC 500x375 image and ``size`` 480 this is ``(353, 449)``.
    """
    max_size = size - (size - 1) % factor
    large = np.array([math.floor(height * size / min(height, width)), math.floor(width * size / min(height, width))])
    new = large
    if large.max() > max_size:
        s = max_size / max(height, width)
        new = np.array([math.floor(height * s), math.floor(width * s)])
    new = new + (factor - (new - 1) % factor) % factor
    new[new > max_size] -= factor
    return int(new[0]), int(new[1])


@dataclass(frozen=True)
class Geometry:
    """Where the pixels of one training sample come from.

    Attributes:
        height, width: size of the image after the resize and scale.
        ys, yd, hl: rows ``ys:ys+hl`` of the scaled image go to rows ``yd:yd+hl`` of the crop.
        xs, xd, wl: the same for columns.
        crop: side ``S`` of the square output.
        flip: flip the crop horizontally.
    """

    height: int
    width: int
    ys: int
    yd: int
    hl: int
    xs: int
    xd: int
    wl: int
    crop: int
    flip: bool


def _window(n: int, s: int, r: float, augment: bool) -> tuple[int, int, int]:
    """``(src_start, dst_start, length)`` of a crop of side ``s`` from ``n`` pixels, at ``r`` in [0, 1)."""
    if not augment:
        return 0, 0, min(n, s)
    if n >= s:
        return int(r * (n - s + 1)), 0, s
    return 0, int(r * (s - n + 1)), n


def draw_geometry(rng: np.random.Generator, height: int, width: int, crop: int,
                  scale: tuple[float, float] = (0.7, 1.3), augment: bool = True, flip: bool = True,
                  resize_to: int | None = None, scale_step: float = 0.0) -> Geometry:
    """Draw the geometry of one sample of an image of ``height x width``.

    Four numbers are always drawn, in a fixed order (scale, row, column, flip), so the random
    stream never depends on the image. ``resize_to``: the official resize to ``crop + 64``
    first (paper recipe); ``scale_step`` > 0 draws the scale from ``lo, lo + step, ..., hi``
    (official) instead of uniformly. ``augment=False``: no scale, no flip, top-left crop.
    """
    u = rng.random()
    ry, rx = rng.random(), rng.random()
    do_flip = bool(rng.random() < 0.5) and flip and augment
    lo, hi = scale
    if not augment:
        factor = 1.0
    elif scale_step > 0:
        steps = np.linspace(lo, hi, int(round((hi - lo) / scale_step)) + 1)
        factor = float(steps[min(int(u * steps.size), steps.size - 1)])
    else:
        factor = lo + (hi - lo) * u
    h, w = (official_resize_shape(height, width, resize_to) if resize_to and augment else (height, width))
    if factor != 1.0 or (h, w) != (height, width):
        h, w = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
    ys, yd, hl = _window(h, crop, ry, augment)
    xs, xd, wl = _window(w, crop, rx, augment)
    return Geometry(h, w, ys, yd, hl, xs, xd, wl, crop, do_flip)


def warp_map(a: np.ndarray, g: Geometry, fill, nearest: bool) -> np.ndarray:
    """Resize ``a`` (``(H, W)`` or ``(H, W, 3)``) to ``g``'s scale, crop/pad it to ``S x S``
    (``fill`` outside the image) and flip it; nearest-neighbour for label maps."""
    if a.shape[:2] != (g.height, g.width):
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        src = a.astype(np.uint16) if a.dtype.kind in "iu" and a.dtype.itemsize > 2 else a
        a = cv2.resize(src, (g.width, g.height), interpolation=interp).astype(a.dtype, copy=False)
    out = np.empty((g.crop, g.crop) + a.shape[2:], a.dtype)
    out[:] = fill
    out[g.yd:g.yd + g.hl, g.xd:g.xd + g.wl] = a[g.ys:g.ys + g.hl, g.xs:g.xs + g.wl]
    return np.ascontiguousarray(out[:, ::-1]) if g.flip else out


def warp_points(xy: np.ndarray, g: Geometry, height: int, width: int) -> np.ndarray:
    """``(N, 2)`` (x, y) of an ``height x width`` image -> their coordinates in the crop."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    s = np.array([g.width / width, g.height / height])
    out = (xy + 0.5) * s - 0.5 + np.array([g.xd - g.xs, g.yd - g.ys], np.float64)
    if g.flip:
        out[:, 0] = g.crop - 1 - out[:, 0]
    return out


def inside_crop(xy: np.ndarray, crop: int) -> np.ndarray:
    """``(N,) bool``: the point's pixel ``(int(y), int(x))`` lies in the ``crop x crop`` window."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    return (xy[:, 0] > -0.5) & (xy[:, 0] < crop - 0.5) & (xy[:, 1] > -0.5) & (xy[:, 1] < crop - 0.5)


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The official loader's photometric distortion of an ``(H, W, 3) uint8`` RGB image.

    Brightness ``+U(-16, 16)`` (p 1/2); then, in one of two orders chosen with p 1/2, contrast
    ``x U(0.5, 1.5)`` (p 1/2) and hue ``+U(-36, 36)`` degrees in HSV (p 1/2), each clipped to
    [0, 255]. (The official list has no saturation step; neither has this.) Eight numbers are
    always drawn, so the stream does not depend on the image.
    """
    d = [float(v) for v in rng.random(8)]  # Python floats keep the image float32 (numpy 2)
    im = np.asarray(image, np.float32).copy()
    if d[0] < 0.5:
        im = np.clip(im + (d[1] * 32 - 16), 0, 255)
    contrast_first = d[2] < 0.5
    alpha = 0.5 + d[4]

    def contrast(x):
        return np.clip(x * alpha, 0, 255) if d[3] < 0.5 else x

    if contrast_first:
        im = contrast(im)
    if d[5] < 0.5:
        hsv = cv2.cvtColor(im, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + (d[6] * 72 - 36), 360.0)
        im = np.clip(cv2.cvtColor(hsv.astype(np.float32), cv2.COLOR_HSV2RGB), 0, 255)
    if not contrast_first:
        im = contrast(im)
    return np.clip(np.round(im), 0, 255).astype(np.uint8)
