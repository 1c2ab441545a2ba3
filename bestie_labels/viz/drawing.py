"""Layers and panels of every figure, drawn with OpenCV (vectorised; text and markers per object).

A *layer* is an ``(H, W, 4) uint8`` RGBA image drawn over the photo (alpha 0 = the photo shows
through): the HTML image pages stack them so that each can be toggled; :func:`composite` puts
one over the photo for a flat figure. The *panels* (:func:`overlay_panels`,
:func:`prediction_panels`) are flat RGB figures, side by side, for ``report --overlays`` and
``predict/evaluate --vis``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..core.errors import BestieError
from .palette import class_colours, instance_colours

_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def blend(image: np.ndarray, colour: np.ndarray, where: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``image`` with ``colour`` ``(H, W, 3)`` mixed in at ``alpha`` where ``where (H, W) bool``."""
    out = image.copy()
    out[where] = (alpha * colour[where] + (1 - alpha) * image[where]).astype(np.uint8)
    return out


def missing_panel(h: int, w: int, text: str) -> np.ndarray:
    """A grey ``(h, w, 3) uint8`` panel saying ``text`` (an input that is not there)."""
    import cv2

    panel = np.full((h, w, 3), 96, np.uint8)
    cv2.putText(panel, text, (4, min(h - 4, 16)), _FONT, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def text_scale(h: int, w: int) -> float:
    """Font scale for class names: readable on a 128-px panel and on a 500-px photo."""
    return float(np.clip(min(h, w) / 800, 0.3, 0.6))


def put_text(img: np.ndarray, text: str, org: tuple[int, int], colour=(255, 255, 255), scale: float = 0.4) -> None:
    """Write ``text`` at ``org`` (x, y of the baseline) in place, with a dark rim so that it reads
    over any colour; an RGBA ``img`` gets opaque text. The text is kept inside the image."""
    import cv2

    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    h, w = img.shape[:2]
    x = int(np.clip(org[0], 0, max(0, w - tw - 1)))
    y = int(np.clip(org[1], th + 1, h - 2))
    rgba = img.shape[2] == 4
    dark = (0, 0, 0, 255) if rgba else (0, 0, 0)
    fg = (*(int(c) for c in colour[:3]), 255) if rgba else tuple(int(c) for c in colour[:3])
    cv2.putText(img, text, (x, y), _FONT, scale, dark, 3, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), _FONT, scale, fg, 1, cv2.LINE_AA)


def outlines(inst: np.ndarray, thickness: int = 1) -> np.ndarray:
    """``(H, W) bool``: the pixels of a label map (0 = none) on the border of their label."""
    import cv2

    lab = np.asarray(inst)
    edges = np.zeros(lab.shape, bool)
    d = lab[1:] != lab[:-1]
    edges[1:] |= d
    edges[:-1] |= d
    d = lab[:, 1:] != lab[:, :-1]
    edges[:, 1:] |= d
    edges[:, :-1] |= d
    if thickness > 1:
        edges = cv2.dilate(edges.view(np.uint8), np.ones((thickness, thickness), np.uint8)).view(bool)
    return edges & (lab > 0)


def lookup(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[labels]``: ``(H, W)`` integers in ``0..K-1`` through a ``(K, 4) uint8`` table to
    ``(H, W, 4) uint8`` (one 4-byte gather per pixel: twice as fast as OpenCV's LUT here)."""
    t32 = np.ascontiguousarray(table, np.uint8).view(np.uint32).ravel()
    lab = np.asarray(labels)
    return np.take(t32, lab).view(np.uint8).reshape(*lab.shape, 4)


def anchors(inst: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """``(n, 2) float64`` (x, y) centroid of each instance 1..n of a label map; NaN when absent.

    ``where``: ``(H, W) bool``, count only these pixels (e.g. the outlines: a text anchor inside
    the instance's extent at a fraction of the cost)."""
    inst = np.asarray(inst)
    ys, xs = np.nonzero(inst if where is None else where)
    ids = inst[ys, xs].astype(np.int64) - 1
    keep = (ids >= 0) & (ids < n)
    ys, xs, ids = ys[keep], xs[keep], ids[keep]
    cnt = np.bincount(ids, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(ids, weights=xs, minlength=n) / cnt
        cy = np.bincount(ids, weights=ys, minlength=n) / cnt
    return np.stack([cx, cy], 1)


def zoom_factor(width: int, min_width: int = 320) -> int:
    """The integer factor that draws an image narrower than ``min_width`` at least that wide
    (class names stay readable on the 128-px demo images); 1 for wider images."""
    return max(1, -(-min_width // max(1, int(width))))


def zoom_labels(a: np.ndarray, k: int) -> np.ndarray:
    """``(H, W, ...)`` label map (or mask) enlarged ``k`` times, each pixel a ``k x k`` block."""
    return a if k == 1 else np.repeat(np.repeat(np.asarray(a), k, 0), k, 1)


def zoom_image(image: np.ndarray, k: int) -> np.ndarray:
    """``(H, W, 3) uint8`` enlarged ``k`` times (bilinear)."""
    import cv2

    h, w = image.shape[:2]
    return image if k == 1 else cv2.resize(image, (w * k, h * k), interpolation=cv2.INTER_LINEAR)


def zoom_points(points: np.ndarray | None, k: int) -> np.ndarray | None:
    """``(N, >=2)`` rows with pixel x, y first, moved to the image enlarged ``k`` times."""
    if points is None or k == 1:
        return points
    p = np.array(points, np.float32, copy=True)
    p[:, :2] = (p[:, :2] + 0.5) * k - 0.5
    return p


def _rgba(h: int, w: int) -> np.ndarray:
    return np.zeros((h, w, 4), np.uint8)


def cue_layer(h: int, w: int, cues: np.ndarray, class_names: Sequence[str] | None = None) -> np.ndarray:
    """Cues as an ``(h, w, 4)`` layer: a dot per cue in its class colour (white rim), its class
    name beside it.

    Args:
        cues: ``(N, 4) float32`` x, y, cls, conf.
        class_names: C names (no text when None).
    """
    import cv2

    cues = np.asarray(cues, np.float64).reshape(-1, 4)
    layer = _rgba(h, w)
    r = max(2, round(min(h, w) / 80))
    cols = class_colours(max(len(class_names or ()), int(cues[:, 2].max()) + 1 if len(cues) else 0))
    scale = text_scale(h, w)
    for x, y, c, _ in cues:
        col = (*(int(v) for v in cols[int(c)]), 255)
        cv2.circle(layer, (int(x), int(y)), r + 2, (255, 255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(layer, (int(x), int(y)), r, col, -1, cv2.LINE_AA)
        if class_names is not None:
            put_text(layer, class_names[int(c)], (int(x) + r + 4, int(y) + 4), cols[int(c)], scale)
    return layer


def class_mask_layer(mask: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """A class mask (0 background, k + 1 class k, 255 void) as an ``(H, W, 4)`` layer: each class
    in its colour at ``alpha``, background clear, void white."""
    from ..core.fileio import voc_palette

    table = np.concatenate([voc_palette(), np.full((256, 1), int(255 * alpha), np.uint8)], axis=1)
    table[0, 3] = 0
    table[255, :3] = 255
    return lookup(np.asarray(mask, np.uint8), table)


def instance_layer(inst: np.ndarray, texts: Sequence[str] | None = None, outline: np.ndarray | None = None,
                   alpha: float = 0.55, thickness: int = 2) -> np.ndarray:
    """Instances as an ``(H, W, 4)`` layer: one colour each, outlined, a text at each.

    Args:
        inst: ``(H, W)`` integer map, 0 = none, n = instance n - 1.
        texts: a short text per instance (its class name), written at its centroid; or None.
        outline: ``(N, 3) uint8`` outline colour per instance (TP green, FP red, ...); None: white.
        alpha: opacity of the fill.
    """
    inst = np.asarray(inst)
    h, w = inst.shape
    n = max(int(inst.max()) if inst.size else 0, len(texts or ()), 0 if outline is None else len(outline))
    fill = np.zeros((n + 1, 4), np.uint8)
    fill[1:, :3] = instance_colours(n)
    fill[1:, 3] = int(255 * alpha)
    lay = lookup(inst, fill)
    edge = outlines(inst, thickness)
    line = np.full((n + 1, 4), 255, np.uint8)
    if outline is not None:
        line[1:len(outline) + 1, :3] = np.asarray(outline, np.uint8).reshape(-1, 3)
    lay[edge] = line[inst[edge]]
    if texts:
        scale = text_scale(h, w)
        for k, (x, y) in enumerate(anchors(inst, n, edge)[:len(texts)]):
            if np.isfinite(x) and texts[k]:
                put_text(lay, texts[k], (int(x) - 10, int(y) + 4), (255, 255, 255), scale)
    return lay


def composite(image: np.ndarray, *layers: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8``: RGBA ``layers`` over the RGB ``image``, in order."""
    out = np.asarray(image, np.float32)
    for lay in layers:
        a = lay[..., 3:4].astype(np.float32) / 255.0
        out = out * (1 - a) + lay[..., :3].astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def instance_panel(image: np.ndarray, instances: np.ndarray, centers: np.ndarray | None = None,
                   labels: Sequence[str] | None = None) -> np.ndarray:
    """Instances over the image: one colour each, white outlines, optional centers and labels.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        instances: ``(H, W)`` integer map, 0 = none, n = instance n - 1.
        centers: ``(N, 2)`` (x, y) drawn as white crosses, or None.
        labels: N short texts (e.g. ``"cow 0.93"``) written at each instance, or None.

    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    import cv2

    h, w = image.shape[:2]
    r = max(2, round(min(h, w) / 80))
    lay = instance_layer(instances, labels, alpha=0.6, thickness=1)
    panel = composite(image, lay)
    if centers is not None:
        for x, y in np.asarray(centers).reshape(-1, 2):
            if np.isfinite(x) and np.isfinite(y):
                cv2.drawMarker(panel, (int(round(x)), int(round(y))), (255, 255, 255), cv2.MARKER_CROSS, 2 * r + 3, 2)
    return panel


def prediction_panels(image: np.ndarray, gt_instances: np.ndarray | None, masks: np.ndarray,
                      classes: np.ndarray, scores: np.ndarray, class_names: Sequence[str],
                      gap: int = 4) -> np.ndarray:
    """Image | GT instances | predicted instances (with class and score), side by side.

    Args:
        image: ``(H, W, 3) uint8``; gt_instances: ``(H, W)`` int map or None (grey panel).
        masks: ``(K, H, W) bool`` predictions; classes ``(K,)`` 0-based; scores ``(K,)``.

    Returns:
        ``(H, 3 W + 2 gap, 3) uint8`` RGB.
    """
    h, w = image.shape[:2]
    pred = paint_masks(masks, scores, h, w)
    texts = [f"{class_names[int(c)]} {float(s):.2f}" for c, s in zip(classes, scores)]
    p_gt = missing_panel(h, w, "no GT") if gt_instances is None else instance_panel(image, gt_instances)
    sep = np.full((h, gap, 3), 255, np.uint8)
    return np.concatenate([image, sep, p_gt, sep, instance_panel(image, pred, labels=texts)], axis=1)


def paint_masks(masks: np.ndarray, scores: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(H, W) int64`` map of overlapping masks ``(K, H, W) bool``: pixel -> 1 + the index of
    the highest-scoring mask holding it (0 none)."""
    masks = np.asarray(masks, bool).reshape(-1, h, w)
    if not len(masks):
        return np.zeros((h, w), np.int64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    # first of the score order that holds the pixel: argmax over the reordered stack
    stack = masks[order]
    first = stack.argmax(0)
    return np.where(stack.any(0), order[first] + 1, 0)


def overlay_panels(image: np.ndarray, wsss: np.ndarray | None, cues: np.ndarray | None,
                   instances: np.ndarray, classes: np.ndarray, centers: np.ndarray,
                   gap: int = 4, class_names: Sequence[str] | None = None) -> np.ndarray:
    """Image | WSSS mask | cues | pseudo instances, side by side.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        wsss: ``(H, W) uint8`` class mask (VOC palette colours), or None (grey panel).
        cues: ``(N, 4) float32`` x, y, cls, conf (dots in the class's palette colour), or None.
        instances: ``(H, W) uint16`` pseudo instances (one colour each, outlined).
        classes: ``(M,) int32``; centers: ``(M, 2) float32`` (x, y), drawn as white crosses.
        class_names: C names: cues and instances get their class name; None: no text.

    Returns:
        ``(H, 4 W + 3 gap, 3) uint8`` RGB.
    """
    from ..core.fileio import voc_palette

    h, w = image.shape[:2]
    if wsss is None:
        p_wsss = missing_panel(h, w, "no WSSS store")
    else:
        p_wsss = blend(image, voc_palette()[wsss], np.ones((h, w), bool), 0.7)
    if cues is None:
        p_cues = missing_panel(h, w, "no cues store")
    else:
        p_cues = composite((image // 2 + 64).astype(np.uint8), cue_layer(h, w, cues, class_names))
    texts = None if class_names is None else [class_names[int(c)] for c in np.asarray(classes).reshape(-1)]
    p_inst = instance_panel(image, instances, centers, texts)
    sep = np.full((h, gap, 3), 255, np.uint8)
    return np.concatenate([image, sep, p_wsss, sep, p_cues, sep, p_inst], axis=1)


def encode_png(arr: np.ndarray, level: int = 3) -> bytes:
    """PNG bytes of ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA ``uint8`` (zlib ``level``)."""
    import cv2

    code = cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR
    # No row filter: the layers are flat colours, so the filters gain little and cost most of the time.
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr, code), params)
    if not ok:
        raise ValueError("cannot encode PNG")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of ``(H, W, 3) uint8`` RGB."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode JPEG")
    return buf.tobytes()


def write_rgb_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3) uint8`` RGB as a PNG, atomically."""
    from ..core.fileio import atomic_path

    try:
        data = encode_png(rgb, 3)
    except ValueError:
        raise BestieError("cannot encode PNG", path) from None
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(data)
