"""Synthetic demo data in the PASCAL VOC2012 layout.

:func:`make_demo_dataset` draws small images of textured objects of a few classes on textured
backgrounds. Several instances of one class share an image and a good share of them touch or
overlap, so that their class masks merge into one blob: the case BESTIE exists for. The tree
has everything a VOC2012 root has (``JPEGImages/``, ``Annotations/``, ``SegmentationClass/``,
``SegmentationObject/``, ``ImageSets/Segmentation/{train,val,trainval}.txt``) plus
``class_names.txt`` and ``points/<id>.txt`` (one GT point per instance, official BESTIE format
``x y cls conf``).

:func:`bestie_labels.formats.voc_writer.write_voc_tree` writes the tree.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..core.constants import VOID
from ..core.errors import BestieError
from ..formats.voc_writer import write_voc_tree

#: The demo classes: each has its own shape, colour family and texture.
DEMO_CLASSES = ("disc", "block", "wedge", "cross")
# OpenCV hue (0..180) range of each class's colour family.
_HUES = ((0, 12), (100, 118), (48, 68), (140, 160))


# ----------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------
def _rot(pts: np.ndarray, theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return pts @ np.array([[c, s], [-s, c]])


def _shape_mask(size: int, cls: int, cx: float, cy: float, r: float, theta: float,
                aspect: float) -> np.ndarray:
    """``(size, size) bool`` mask of one object of class ``cls`` centred at ``(cx, cy)``."""
    m = np.zeros((size, size), np.uint8)
    sh = 4  # sub-pixel vertex precision
    if cls == 0:  # disc (slightly elliptic)
        cv2.ellipse(m, (int(round(cx * 16)), int(round(cy * 16))),
                    (int(round(r * 16)), int(round(r * aspect * 16))),
                    np.degrees(theta), 0, 360, 1, -1, cv2.LINE_8, sh)
        return m.astype(bool)
    if cls == 1:  # block: square
        a = 0.85 * r
        pts = np.array([[-a, -a * aspect], [a, -a * aspect], [a, a * aspect], [-a, a * aspect]])
    elif cls == 2:  # wedge: triangle
        ang = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6])
        pts = 1.2 * r * np.stack([np.cos(ang), np.sin(ang) * aspect], 1)
    else:  # cross: plus sign
        a, b = r, 0.36 * r
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a],
                        [-b, b], [-a, b], [-a, -b], [-b, -b]])
    pts = _rot(pts, theta) + (cx, cy)
    cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, sh)
    return m.astype(bool)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    px = np.array([[[h, s, v]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """``(size, size) float32`` noise in about [-1, 1] varying over ``cell`` pixels."""
    n = max(2, size // cell + 2)
    small = rng.standard_normal((n, n)).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(big / 1.5, -1, 1)


def _texture(rng: np.random.Generator, size: int, cls: int, cx: float, cy: float, r: float,
             ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Brightness modulation ``(P,) float32`` of class ``cls`` (its texture family) at pixels
    ``(ys, xs)`` of an object centred at ``(cx, cy)`` with radius ``r``."""
    theta = rng.uniform(0, np.pi)
    dx, dy = xs.astype(np.float32) - cx, ys.astype(np.float32) - cy
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    if cls == 0:  # dark spots
        spots = _smooth_noise(rng, size, max(3, int(r / 2.5)))[ys, xs]
        tex = np.where(spots > 0.35, -0.45, 0.08)
    elif cls == 1:  # stripes
        period = rng.uniform(0.35, 0.55) * r
        tex = 0.3 * np.sign(np.sin(2 * np.pi * u / period))
    elif cls == 2:  # checkerboard
        p = rng.uniform(0.3, 0.45) * r
        tex = 0.28 * (((np.floor(u / p) + np.floor(v / p)) % 2) * 2 - 1)
    else:  # concentric rings
        period = rng.uniform(0.3, 0.45) * r
        tex = 0.3 * np.sin(2 * np.pi * np.hypot(u, v) / period)
    return (tex + 0.06 * rng.standard_normal(ys.size)).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3) float32`` textured, weakly coloured background."""
    base = _hsv_to_rgb(rng.uniform(0, 180), rng.uniform(10, 60), rng.uniform(90, 200))
    tint = _hsv_to_rgb(rng.uniform(0, 180), rng.uniform(20, 70), 255) / 255.0
    coarse = _smooth_noise(rng, size, max(4, size // 4))
    fine = _smooth_noise(rng, size, 3)
    img = base[None, None] * (1 + 0.25 * coarse[..., None] + 0.12 * fine[..., None])
    return img + 25 * coarse[..., None] * (tint - 0.5)[None, None]


def _outline_void(inst: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: pixels within 1 px of a change of instance id (a 2-px band per outline)."""
    k = np.ones((3, 3), np.uint8)
    return cv2.dilate(inst, k) != cv2.erode(inst, k)


def _draw_image(rng: np.random.Generator, size: int, num_classes: int, max_objects: int,
                touch_prob: float):
    """One demo image.

    Returns ``image (S, S, 3) uint8``, ``inst (S, S) uint8`` (0 bg, n instance, 255 void),
    ``classes (N,) int64`` (0-based, instance order).
    """
    scale = size / 128.0
    min_px = max(12, int(30 * scale * scale))
    n_cls = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
    present = rng.choice(num_classes, size=min(n_cls, num_classes), replace=False)
    plan = []
    for c in present:
        plan += [int(c)] * int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.35, 0.15]))
    plan = plan[:max_objects]
    rng.shuffle(plan)

    full: list[np.ndarray] = []  # full (unoccluded) masks, in drawing order
    params: list[tuple] = []
    classes: list[int] = []
    inst = np.zeros((size, size), np.uint8)
    for c in plan:
        for _ in range(25):
            r = rng.uniform(0.09, 0.16) * size
            same = [j for j, cj in enumerate(classes) if cj == c]
            if same and rng.random() < touch_prob:
                j = same[int(rng.integers(len(same)))]
                _, pcx, pcy, pr, _, _ = params[j]
                d = (pr + r) * rng.uniform(0.55, 0.95)
                a = rng.uniform(0, 2 * np.pi)
                cx, cy = pcx + d * np.cos(a), pcy + d * np.sin(a)
            else:
                cx, cy = rng.uniform(0.5 * r, size - 0.5 * r, size=2)
            if not (0.5 * r <= cx <= size - 0.5 * r and 0.5 * r <= cy <= size - 0.5 * r):
                continue
            theta, aspect = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.0)
            m = _shape_mask(size, c, cx, cy, r, theta, aspect)
            trial = inst.copy()
            trial[m] = len(classes) + 1
            vis = np.where(_outline_void(trial), 0, trial)
            areas = np.bincount(vis.ravel(), minlength=len(classes) + 2)[1:]
            fulls = np.array([f.sum() for f in full] + [m.sum()])
            if (areas >= np.maximum(min_px, 0.45 * fulls)).all():
                inst = trial
                full.append(m)
                params.append((c, cx, cy, r, theta, aspect))
                classes.append(c)
                break

    img = _background(rng, size)
    for c, cx, cy, r, theta, aspect in params:
        m = _shape_mask(size, c, cx, cy, r, theta, aspect)
        lo, hi = _HUES[c]
        col = _hsv_to_rgb(rng.uniform(lo, hi), rng.uniform(150, 240), rng.uniform(150, 235))
        ys, xs = np.nonzero(m)
        tex = _texture(rng, size, c, cx, cy, r, ys, xs)
        img[ys, xs] = col[None] * (1 + tex[:, None])
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    inst[_outline_void(inst)] = VOID
    return image, inst, np.asarray(classes, np.int64)


def instance_points(inst: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """One point per instance, inside its visible (non-void) pixels.

    ``inst`` is ``(H, W) uint8`` (0 none, n instance n, 255 void), ``classes (N,)`` 0-based.
    Returns ``(N, 4) float32`` rows ``x, y, cls, 1.0`` at each instance's distance-transform
    maximum (the pixel deepest inside it); an instance with no pixel gets no row.
    """
    rows = []
    for n, c in enumerate(classes, start=1):
        m = (inst == n).astype(np.uint8)
        if not m.any():
            continue
        dt = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
        rows.append((x, y, c, 1.0))
    return np.asarray(rows, np.float32).reshape(-1, 4)


def format_points(points: np.ndarray) -> str:
    """``(N, 4)`` points as the official BESTIE text: ``"%d %d %d %.3f"`` per line."""
    return "".join("%d %d %d %.3f\n" % (x, y, c, s) for x, y, c, s in np.asarray(points))


def demo_stems(n_images: int) -> list[str]:
    """VOC-like stems ``2000_000001 ... `` of the demo images."""
    return [f"2000_{i + 1:06d}" for i in range(n_images)]


def _check_demo_args(out: Path, n_images: int, size: int, num_classes: int, force: bool) -> None:
    if n_images < 1:
        raise BestieError("need at least one image", out)
    if size < 32:
        raise BestieError(f"image size {size} is too small (minimum 32)", out)
    if not 1 <= num_classes <= len(DEMO_CLASSES):
        raise BestieError(f"num_classes must be 1..{len(DEMO_CLASSES)}", out)
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise BestieError("output exists (use --force to replace it)", out)


def _class_mask(inst: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(H, W) uint8`` class PNG values of an instance map: ``k + 1`` for class k, void kept."""
    cm = np.where(inst == VOID, VOID, 0).astype(np.uint8)
    fg = (inst > 0) & (inst != VOID)
    cm[fg] = (classes[inst[fg].astype(np.int64) - 1] + 1).astype(np.uint8)
    return cm


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished tree ``tmp`` to ``out``, replacing an existing ``out`` only then."""
    os.chmod(tmp, 0o755)
    if out.exists():
        old = out.with_name(f".{out.name}.old.{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        os.replace(tmp, out)


def make_demo_dataset(
    out: str | os.PathLike,
    n_images: int = 240,
    size: int = 128,
    seed: int = 0,
    train_fraction: float = 0.75,
    num_classes: int = 4,
    max_objects: int = 7,
    touch_prob: float = 0.6,
    force: bool = False,
    progress: bool = False,
    marker: dict | None = None,
) -> Path:
    """Write a synthetic VOC2012-layout dataset to ``out``; returns ``Path(out)``.

    Image ``i`` depends only on ``(seed, i, size, ...)``, so the output is byte-identical for
    the same arguments and the first images do not change when ``n_images`` grows. The first
    ``round(train_fraction * n_images)`` images form ``train``, the rest ``val``; ``trainval``
    lists all. The tree is built in a temporary folder next to ``out`` and renamed into place;
    an existing ``out`` is refused unless ``force``.

    Layout written: ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``,
    ``SegmentationClass/<id>.png``, ``SegmentationObject/<id>.png`` (255 = 2-px void band on
    every object outline), ``ImageSets/Segmentation/{train,val,trainval}.txt``,
    ``class_names.txt``, ``points/<id>.txt`` (``x y cls conf``, cls 0-based), ``.bestie-demo.json`` (``marker``).
    """
    out = Path(out)
    _check_demo_args(out, n_images, size, num_classes, force)
    out.parent.mkdir(parents=True, exist_ok=True)

    stems = demo_stems(n_images)
    n_train = int(round(train_fraction * n_images))
    if n_images >= 2:
        n_train = min(max(n_train, 1), n_images - 1)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        images, cms, oms = [], [], []
        (tmp / "points").mkdir()
        it = range(n_images)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="demo-data", unit="img")
        for i in it:
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), i]))
            image, inst, classes = _draw_image(rng, size, num_classes, max_objects, touch_prob)
            cm = _class_mask(inst, classes)
            (tmp / "points" / f"{stems[i]}.txt").write_text(format_points(instance_points(inst, classes)))
            images.append(image)
            cms.append(cm)
            oms.append(inst)
        write_voc_tree(tmp, stems, images, cms, oms, class_names=DEMO_CLASSES[:num_classes],
                       splits={"train": stems[:n_train], "val": stems[n_train:], "trainval": stems})
        if marker is not None:
            (tmp / ".bestie-demo.json").write_text(json.dumps(marker, sort_keys=True))
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
