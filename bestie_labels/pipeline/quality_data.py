"""Generated dataset families of the quality suite (``benchmarks/bench_quality.py``, issue 20).

Each family differs from the demo data in what the method depends on: which image property
tells the classes apart, how instances touch, how small and how many they are, how busy the
background is, how big the images and how many the classes. Every family is written as a
VOC2012 tree the pipeline reads (the layout of :func:`bestie_labels.pipeline.demo_data.make_demo_dataset`,
with ``points/``), from the demo's drawing primitives:

============ ===============================================================================
family       what it tests
============ ===============================================================================
colour       4 classes told apart only by a hue family (shape and texture drawn at random)
shape        4 classes told apart only by shape (hue and texture at random)
texture      4 classes told apart only by texture (shape and hue at random)
touching     1-2 classes per image, 3-5 instances each, nearly all touching or overlapping
small        6-14 small objects (radius 4-7% of the side) per image
clutter      demo classes on a busy background: high-contrast texture and unlabelled blobs
voclike      500x375 images, 20 classes (shape x hue family), Zipf-imbalanced, 1-6 objects
============ ===============================================================================
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.constants import VOID
from ..core.errors import BestieError
from ..formats.voc_writer import write_voc_tree
from .demo_data import (_HUES, _background, _class_mask, _hsv_to_rgb, _move_into_place, _outline_void, _shape_mask,
                        _smooth_noise, _texture, demo_stems, format_points, instance_points)

_SHAPES = ("disc", "block", "wedge", "cross")
_TEXTURES = ("spots", "stripes", "checks", "rings")
_HUE_NAMES = ("red", "blue", "green", "purple")
# Five hue families (OpenCV 0..180) of the 20 VOC-like classes.
_HUES5 = ((0, 10), (18, 30), (48, 68), (98, 114), (138, 158))
_HUE5_NAMES = ("red", "yellow", "green", "blue", "purple")


@dataclass(frozen=True)
class Family:
    """How one family draws its images.

    ``attrs[c]`` is ``(shape, hue family, texture)`` of class c; -1 draws that property at
    random per object (uninformative). ``hues`` are the hue families' OpenCV ranges.
    """

    name: str
    class_names: tuple
    attrs: tuple
    hues: tuple = _HUES
    width: int = 128
    height: int = 128
    classes_per_image: tuple = (1, 2, 3)
    instances_per_class: tuple = (1, 2, 3, 4)
    max_objects: int = 7
    radius: tuple = (0.09, 0.16)
    touch_prob: float = 0.6
    clutter: bool = False
    class_weights: tuple | None = None


def _families() -> dict:
    demo = tuple((c, c, c) for c in range(4))
    vocn = tuple(f"{_HUE5_NAMES[h]}_{_SHAPES[s]}" for s in range(4) for h in range(5))
    voca = tuple((s, h, -1) for s in range(4) for h in range(5))
    zipf = tuple(1.0 / (k + 1) for k in range(20))
    return {f.name: f for f in (
        Family("colour", _HUE_NAMES, tuple((-1, c, -1) for c in range(4))),
        Family("shape", _SHAPES, tuple((c, -1, -1) for c in range(4))),
        Family("texture", _TEXTURES, tuple((-1, -1, c) for c in range(4))),
        Family("touching", _SHAPES, demo, classes_per_image=(1, 1, 2), instances_per_class=(3, 4, 5),
               touch_prob=0.95),
        Family("small", _SHAPES, demo, instances_per_class=(3, 4, 5, 6), max_objects=14, radius=(0.04, 0.07),
               touch_prob=0.3),
        Family("clutter", _SHAPES, demo, clutter=True),
        Family("voclike", vocn, voca, hues=_HUES5, width=500, height=375, classes_per_image=(1, 1, 2, 3),
               instances_per_class=(1, 1, 2, 3), max_objects=6, radius=(0.06, 0.2), touch_prob=0.4,
               class_weights=zipf),
    )}


#: The families by name, in the suite's order.
FAMILIES = _families()


def _plan(rng: np.random.Generator, fam: Family) -> list[int]:
    """The classes of one image's objects, in drawing order."""
    c = len(fam.class_names)
    n_cls = min(int(rng.choice(fam.classes_per_image)), c)
    p = None if fam.class_weights is None else np.asarray(fam.class_weights) / np.sum(fam.class_weights)
    present = rng.choice(c, size=n_cls, replace=False, p=p)
    plan = [int(k) for k in present for _ in range(int(rng.choice(fam.instances_per_class)))]
    rng.shuffle(plan)
    return plan[:fam.max_objects]


def _place(rng: np.random.Generator, fam: Family, plan: list[int], side: int):
    """Positions of the objects of ``plan`` on a ``side``-square canvas (cropped later to the image);
    an object is placed when every object keeps at least 45% of its area visible.

    Returns ``inst (H, W) uint8`` (0 bg, n instance n) and the list of ``(cls, shape, cx, cy, r, theta, aspect)``.
    """
    h, w = fam.height, fam.width
    short = min(h, w)
    min_px = max(12, int(0.07 * np.pi * (fam.radius[0] * short) ** 2))  # the demo's 30 px at 128
    inst = np.zeros((h, w), np.uint8)
    params, fulls = [], []
    for c in plan:
        shape = fam.attrs[c][0] if fam.attrs[c][0] >= 0 else int(rng.integers(4))
        for _ in range(25):
            r = rng.uniform(*fam.radius) * short
            same = [p for p in params if p[0] == c]
            if same and rng.random() < fam.touch_prob:
                _, _, pcx, pcy, pr, _, _ = same[int(rng.integers(len(same)))]
                d, a = (pr + r) * rng.uniform(0.55, 0.95), rng.uniform(0, 2 * np.pi)
                cx, cy = pcx + d * np.cos(a), pcy + d * np.sin(a)
            else:
                cx, cy = rng.uniform(0.5 * r, w - 0.5 * r), rng.uniform(0.5 * r, h - 0.5 * r)
            if not (0.5 * r <= cx <= w - 0.5 * r and 0.5 * r <= cy <= h - 0.5 * r):
                continue
            theta, aspect = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.0)
            m = _shape_mask(side, shape, cx, cy, r, theta, aspect)[:h, :w]
            trial = inst.copy()
            trial[m] = len(params) + 1
            vis = np.where(_outline_void(trial), 0, trial)
            areas = np.bincount(vis.ravel(), minlength=len(params) + 2)[1:]
            if (areas >= np.maximum(min_px, 0.45 * np.array(fulls + [m.sum()]))).all():
                inst = trial
                fulls.append(int(m.sum()))
                params.append((c, shape, cx, cy, r, theta, aspect))
                break
    return inst, params


def _clutter(rng: np.random.Generator, img: np.ndarray, side: int) -> np.ndarray:
    """A busy background: high-contrast fine texture and 4-10 unlabelled blobs of any colour."""
    h, w = img.shape[:2]
    fine = _smooth_noise(rng, side, 2)[:h, :w]
    img = img * (1 + 0.35 * fine[..., None])
    for _ in range(int(rng.integers(4, 11))):
        n = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.03, 0.1, n) * min(h, w)
        c = rng.uniform((0, 0), (w, h))
        pts = np.stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)], 1)
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
        col = _hsv_to_rgb(rng.uniform(0, 180), rng.uniform(60, 220), rng.uniform(80, 230))
        ys, xs = np.nonzero(m)
        img[ys, xs] = col[None] * (1 + 0.3 * _smooth_noise(rng, side, 3)[ys, xs, None])
    return img


def draw_family_image(rng: np.random.Generator, fam: Family):
    """One image of ``fam``: ``image (H, W, 3) uint8``, ``inst (H, W) uint8`` (0 bg, n instance n,
    255 void: a 2-px band on every outline), ``classes (N,) int64`` (0-based, instance order)."""
    side = max(fam.height, fam.width)
    inst, params = _place(rng, fam, _plan(rng, fam), side)
    img = _background(rng, side)[:fam.height, :fam.width]
    if fam.clutter:
        img = _clutter(rng, img, side)
    for c, shape, cx, cy, r, theta, aspect in params:
        _, hue, tex = fam.attrs[c]
        hue = hue if hue >= 0 else None
        lo, hi = fam.hues[hue] if hue is not None else (0, 180)
        col = _hsv_to_rgb(rng.uniform(lo, hi), rng.uniform(150, 240), rng.uniform(150, 235))
        ys, xs = np.nonzero(_shape_mask(side, shape, cx, cy, r, theta, aspect)[:fam.height, :fam.width])
        t = _texture(rng, side, tex if tex >= 0 else int(rng.integers(4)), cx, cy, r, ys, xs)
        img[ys, xs] = col[None] * (1 + t[:, None])
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    inst[_outline_void(inst)] = VOID
    return image, inst, np.asarray([p[0] for p in params], np.int64)


def make_family_dataset(out, family: str, n_images: int = 400, seed: int = 0, train_fraction: float = 0.75,
                        scale: float = 1.0, force: bool = False) -> Path:
    """Write ``n_images`` of ``family`` as a VOC2012 tree at ``out`` (the demo's layout and split rule).

    ``scale`` shrinks the family's image size (``--quick``); image ``i`` depends only on
    ``(family, seed, i, scale)``. Returns ``Path(out)``.
    """
    if family not in FAMILIES:
        raise BestieError(f"unknown family {family!r} (families: {', '.join(FAMILIES)})")
    fam = FAMILIES[family]
    if scale != 1.0:
        fam = Family(**{**fam.__dict__, "width": int(round(fam.width * scale)), "height": int(round(fam.height * scale))})
    out = Path(out)
    if out.exists() and not force:
        raise BestieError("output exists (use force to replace it)", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stems = demo_stems(n_images)
    n_train = min(max(int(round(train_fraction * n_images)), 1), max(n_images - 1, 1))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        images, cms, oms = [], [], []
        (tmp / "points").mkdir()
        fid = list(FAMILIES).index(family)
        for i in range(n_images):
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1000 + fid, i]))
            image, inst, classes = draw_family_image(rng, fam)
            (tmp / "points" / f"{stems[i]}.txt").write_text(format_points(instance_points(inst, classes)))
            images.append(image)
            cms.append(_class_mask(inst, classes))
            oms.append(inst)
        write_voc_tree(tmp, stems, images, cms, oms, class_names=fam.class_names,
                       splits={"train": stems[:n_train], "val": stems[n_train:], "trainval": stems})
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
