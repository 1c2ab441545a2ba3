"""Training data for the instance network: images, semantic targets and pseudo instance targets.

One sample of :class:`TrainData` is built from three sources for the same image id:

* the dataset split (image, image-level labels),
* ``wsss.h5`` (``mask (H, W) uint8``: 0 background, k + 1 class k, 255 ignore),
* ``pseudo.h5`` (``instances (H, W) uint16``, ``classes (N,)``, ``centers (N, 2)`` x, y).

**Semantic target.** It is the WSSS class mask, as in the official BESTIE code, with one
override: every pixel of a pseudo instance takes that instance's class (``classes[n] + 1``).
Pseudo instances made by the transfer stage are components of the WSSS mask, so the override
changes nothing for them; it matters when the pseudo labels come from elsewhere (``--from-gt``,
point-made pseudo labels over another WSSS), where the instance labels are the more specific
source. Pixels outside the image after cropping are 255 (ignored by the loss).

**Augmentation** (training only): random scale ``U(0.7, 1.3)`` of the original image (bilinear
for the image, nearest for label maps), a ``crop x crop`` window at a random position (an image
smaller than the crop is placed at a random position on a canvas of the mean colour, labels
255 / no instance), and a horizontal flip with probability 1/2. Every random number of a sample
comes from its own generator seeded with ``(seed, epoch, index)``, so a sample does not depend
on the number of DataLoader workers, on the order samples are drawn in, or on whether the run
was interrupted and resumed.

**Instance targets** come from :func:`bestie_labels.targets.make_targets` on the augmented
instance map: center heatmaps ``(C, S, S)``, offsets ``(2, S, S)`` (dy, dx) and the
instance-aware-guidance weight ``(S, S)`` (1 on pseudo instance pixels). Instances with no
visible pixel after cropping are dropped.

**Refinement inputs**: the augmented WSSS mask and its component map (8-connected components of
each image-level class, numbered 1.. across classes, 0 elsewhere), the image-level labels, and,
for point supervision, the labelled points of the image (from ``points/<id>.txt`` of the
dataset or ``points_dir``, every point of an image-level class, not only those matched to a
pseudo instance).

:class:`EpochBatches` yields batches of ``(epoch, index)`` keys: a per-epoch permutation seeded
with ``(seed, epoch)``, sharded across DistributedDataParallel ranks, and able to start at any
iteration, which is what makes ``fit --resume`` continue exactly.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch

from bestie_labels.constants import IMAGENET_MEAN, IMAGENET_STD, VOID
from bestie_labels.errors import BestieError
from bestie_labels.store import Store

from .regions import component_map

#: Stage names of the stores read here (``bestie_labels.stages``).
PSEUDO_STAGE, WSSS_STAGE = "pseudo", "wsss"


def normalize_image(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` RGB -> ``(3, H, W) float32`` tensor normalised with the ImageNet statistics."""
    scale = 1.0 / (255.0 * np.asarray(IMAGENET_STD, np.float32))
    shift = np.asarray(IMAGENET_MEAN, np.float32) / np.asarray(IMAGENET_STD, np.float32)
    x = np.asarray(image, np.float32) * scale - shift  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample: depends only on ``(seed, epoch, index)``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]))


def semantic_target(wsss: np.ndarray, instances: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The semantic target: the WSSS mask with pseudo instance pixels set to their class.

    Args:
        wsss: ``(H, W) uint8`` (0 background, k + 1 class k, 255 ignore).
        instances: ``(H, W)`` integer map (0 none, n instance n - 1).
        classes: ``(N,)`` 0-based class of each instance.

    Returns:
        ``(H, W) uint8`` class mask in the same convention as ``wsss``.
    """
    sem = np.array(wsss, np.uint8, copy=True)
    fg = instances > 0
    if fg.any():
        lut = np.concatenate([[0], np.asarray(classes, np.int64) + 1]).astype(np.uint8)
        sem[fg] = lut[instances[fg].astype(np.int64)]
    return sem


class TrainData(torch.utils.data.Dataset):
    """Augmented training samples over a dataset split, ``pseudo.h5`` and ``wsss.h5``.

    Args:
        dataset: the training split (:class:`bestie_labels.datasets.base.Dataset`).
        pseudo: path of the transfer store (``pseudo.h5``).
        wsss: path of the WSSS store (``wsss.h5``).
        crop: side of the square training crop ``S``.
        scale: ``(lo, hi)`` range of the random scale factor.
        flip: random horizontal flip.
        augment: False gives the full image, unscaled and unflipped, padded to ``crop`` when
            smaller and cropped at the top-left when larger (for inspection and tests).
        seed: base seed of every per-sample generator.
        sigma: Gaussian sigma of the center heatmaps, in pixels of the crop.
        sup: ``"cls"`` or ``"point"``; ``"point"`` also reads point labels.
        points_dir: folder of ``<id>.txt`` point files (``x y cls conf``) for ``sup="point"``;
            default: the dataset's ``points/`` (demo data).

    ``ds[(epoch, index)]`` (or ``ds[index]`` for epoch 0) returns a dict:

    ========== =============================== =============================================
    image      ``(3, S, S) float32``           normalised RGB (:func:`normalize_image`)
    semantic   ``(S, S) int64``                0 bg, k + 1 class k, 255 ignore
    center     ``(C, S, S) float32``           pseudo center heatmaps
    offset     ``(2, S, S) float32``           pseudo offsets (dy, dx)
    weight     ``(S, S) float32``              1 on pseudo instance pixels, else 0
    wsss       ``(S, S) int64``                augmented WSSS mask (255 ignore / padding)
    components ``(S, S) int64``                :func:`component_map` of ``wsss``
    labels     ``(C,) float32``                image-level labels
    points     ``(P, 2) float32``              x, y of point labels in the crop (sup=point)
    point_classes ``(P,) int64``               their classes (``P`` = 0 for sup=cls)
    index      ``int``                         dataset index
    ========== =============================== =============================================
    """

    def __init__(self, dataset, pseudo: str | os.PathLike, wsss: str | os.PathLike, crop: int = 416,
                 scale: tuple[float, float] = (0.7, 1.3), flip: bool = True, augment: bool = True,
                 seed: int = 0, sigma: float = 6.0, sup: str = "cls",
                 points_dir: str | os.PathLike | None = None):
        if sup not in ("cls", "point"):
            raise ValueError(f"sup must be 'cls' or 'point', got {sup!r}")
        if crop < 8:
            raise BestieError(f"crop size {crop} is too small (minimum 8)")
        self.dataset = dataset
        self.pseudo_path = os.fspath(pseudo)
        self.wsss_path = os.fspath(wsss)
        self.crop = int(crop)
        self.scale = (float(scale[0]), float(scale[1]))
        self.flip = bool(flip)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.sigma = float(sigma)
        self.sup = sup
        self.num_classes = dataset.num_classes
        for path, stage in ((self.pseudo_path, PSEUDO_STAGE), (self.wsss_path, WSSS_STAGE)):
            with Store(path, stage=stage) as s:
                held = set(s.image_ids)
            missing = [i for i in dataset.image_ids if i not in held]
            if missing:
                raise BestieError(f"{len(missing)} images of split '{dataset.split}' are not in this "
                                  f"store (first: {missing[0]})", path)
        self.points_dir = None
        if sup == "point":
            pd = points_dir if points_dir is not None else getattr(dataset, "points_dir", None)
            if pd is None:
                raise BestieError("point supervision needs point labels: give --points DIR "
                                  "(x y cls conf files <id>.txt)", getattr(dataset, "root", None))
            if not os.path.isdir(pd):
                raise BestieError("points folder not found", pd)
            self.points_dir = os.fspath(pd)
        self._stores: tuple[int, Store, Store] | None = None

    # Stores are opened lazily, once per process: h5py handles do not survive fork/pickle.
    def _open(self) -> tuple[Store, Store]:
        pid = os.getpid()
        if self._stores is None or self._stores[0] != pid:
            self._stores = (pid, Store(self.pseudo_path, stage=PSEUDO_STAGE), Store(self.wsss_path, stage=WSSS_STAGE))
        return self._stores[1], self._stores[2]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_stores"] = None
        return state

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> dict[str, np.ndarray]:
        """The un-augmented arrays of sample ``index`` (validated against the image size).

        Returns ``image (H, W, 3) uint8``, ``semantic (H, W) uint8``, ``wsss (H, W) uint8``,
        ``instances (H, W) int64``, ``classes (N,) int64``, ``centers (N, 2) float64`` (x, y),
        ``labels (C,) bool`` and ``points (P, 3) float64`` (x, y, class; empty for sup=cls).
        """
        rec = self.dataset.records[index]
        pseudo, wsss = self._open()
        image = self.dataset.load_image(rec)
        h, w = image.shape[:2]
        p = pseudo.read(rec.image_id)
        m = wsss.read(rec.image_id)
        if "mask" not in m:
            raise BestieError(f"image {rec.image_id} has no 'mask' dataset", self.wsss_path)
        for key in ("instances", "classes", "centers"):
            if key not in p:
                raise BestieError(f"image {rec.image_id} has no '{key}' dataset", self.pseudo_path)
        mask = np.asarray(m["mask"], np.uint8)
        inst = np.asarray(p["instances"]).astype(np.int64)
        classes = np.asarray(p["classes"]).astype(np.int64).reshape(-1)
        centers = np.asarray(p["centers"], np.float64).reshape(-1, 2)
        if mask.shape != (h, w):
            raise BestieError(f"image {rec.image_id}: WSSS mask is {mask.shape[1]}x{mask.shape[0]} "
                              f"but the image is {w}x{h}", self.wsss_path)
        if inst.shape != (h, w):
            raise BestieError(f"image {rec.image_id}: instance map is {inst.shape[1]}x{inst.shape[0]} "
                              f"but the image is {w}x{h}", self.pseudo_path)
        n = classes.shape[0]
        if centers.shape[0] != n or (inst.size and int(inst.max()) > n):
            raise BestieError(f"image {rec.image_id}: instance map, classes and centers disagree "
                              f"({int(inst.max()) if inst.size else 0} ids, {n} classes, "
                              f"{centers.shape[0]} centers)", self.pseudo_path)
        if n and (classes.min() < 0 or classes.max() >= self.num_classes):
            raise BestieError(f"image {rec.image_id}: class {int(classes.max())} is not a class of "
                              f"the dataset ({self.num_classes} classes)", self.pseudo_path)
        fgc = mask[(mask != 0) & (mask != VOID)]
        if fgc.size and int(fgc.max()) > self.num_classes:
            raise BestieError(f"image {rec.image_id}: WSSS value {int(fgc.max())} is above the class "
                              f"count {self.num_classes}", self.wsss_path)
        labels = np.asarray(rec.labels, bool)
        points = np.zeros((0, 3), np.float64)
        if self.sup == "point":
            from bestie_labels.points import read_points

            pts = read_points(os.path.join(self.points_dir, f"{rec.image_id}.txt"), h, w,
                              self.num_classes)
            keep = labels[pts[:, 2].astype(np.int64)] if len(pts) else np.zeros(0, bool)
            points = pts[keep, :3].astype(np.float64)
        return dict(image=image, semantic=semantic_target(mask, inst, classes), wsss=mask,
                    instances=inst, classes=classes, centers=centers, labels=labels, points=points)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        a = self.load(index)
        rng = sample_rng(self.seed, epoch, index)
        image, sem, wsss, inst = a["image"], a["semantic"], a["wsss"], a["instances"]
        centers, points = a["centers"].copy(), a["points"].copy()
        h, w = sem.shape
        s = self.crop

        # Draws in a fixed order, all of them always, so the stream never depends on the image.
        factor = rng.uniform(*self.scale) if self.augment else 1.0
        ry, rx = rng.random(), rng.random()
        do_flip = bool(rng.random() < 0.5) and self.flip and self.augment

        if factor != 1.0:
            nh, nw = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            sem = cv2.resize(sem, (nw, nh), interpolation=cv2.INTER_NEAREST)
            wsss = cv2.resize(wsss, (nw, nh), interpolation=cv2.INTER_NEAREST)
            # OpenCV resizes 16-bit maps with nearest; ids above 65535 cannot occur (uint16 store).
            inst = cv2.resize(inst.astype(np.uint16), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(np.int64)
            sx, sy = nw / w, nh / h
            # Pixel centres map as (x + 0.5) * s - 0.5.
            centers = (centers + 0.5) * np.array([sx, sy]) - 0.5
            points[:, :2] = (points[:, :2] + 0.5) * np.array([sx, sy]) - 0.5
            h, w = nh, nw

        def window(n: int, r: float) -> tuple[int, int, int]:
            if not self.augment:
                return 0, 0, min(n, s)
            if n >= s:
                return int(r * (n - s + 1)), 0, s
            return 0, int(r * (s - n + 1)), n

        ys, yd, hl = window(h, ry)
        xs, xd, wl = window(w, rx)
        pad_colour = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
        img_c = np.empty((s, s, 3), np.uint8)
        img_c[:] = pad_colour
        sem_c = np.full((s, s), VOID, np.uint8)
        wsss_c = np.full((s, s), VOID, np.uint8)
        inst_c = np.zeros((s, s), np.int64)
        src = (slice(ys, ys + hl), slice(xs, xs + wl))
        dst = (slice(yd, yd + hl), slice(xd, xd + wl))
        img_c[dst] = image[src]
        sem_c[dst] = sem[src]
        wsss_c[dst] = wsss[src]
        inst_c[dst] = inst[src]
        shift = np.array([xd - xs, yd - ys], np.float64)
        centers = centers + shift
        points[:, :2] += shift
        if do_flip:
            img_c, sem_c, wsss_c, inst_c = (a_[:, ::-1] for a_ in (img_c, sem_c, wsss_c, inst_c))
            centers[:, 0] = s - 1 - centers[:, 0]
            points[:, 0] = s - 1 - points[:, 0]

        # Keep only instances with visible pixels, renumbered 1..K in their original order.
        classes = a["classes"]
        n = classes.shape[0]
        present = np.flatnonzero(np.bincount(inst_c.ravel(), minlength=n + 1)[1:] > 0)
        lut = np.zeros(n + 1, np.int64)
        lut[present + 1] = np.arange(1, present.size + 1)
        inst_c = lut[inst_c]
        centers, classes = centers[present], classes[present]

        inside = ((points[:, 0] > -0.5) & (points[:, 0] < s - 0.5) &
                  (points[:, 1] > -0.5) & (points[:, 1] < s - 0.5))
        points = points[inside]

        from bestie_labels.targets import make_targets

        tgt = make_targets(torch.from_numpy(np.ascontiguousarray(inst_c)),
                           torch.from_numpy(centers.astype(np.float32)),
                           torch.from_numpy(classes), self.num_classes, sigma=self.sigma)
        if points.shape[0]:
            # Point supervision: a Gaussian at every labelled point, also at the points of
            # instances the transfer could not separate (the official point-supervised target).
            # Each point becomes a one-pixel instance so that make_targets draws it.
            px = np.clip(np.round(points[:, 0]), 0, s - 1).astype(np.int64)
            py = np.clip(np.round(points[:, 1]), 0, s - 1).astype(np.int64)
            dots = np.zeros((s, s), np.int64)
            dots[py, px] = np.arange(1, points.shape[0] + 1)
            extra = make_targets(torch.from_numpy(dots), torch.from_numpy(points[:, :2].astype(np.float32)),
                                 torch.from_numpy(points[:, 2].astype(np.int64)), self.num_classes,
                                 sigma=self.sigma)["center"]
            tgt["center"] = torch.maximum(tgt["center"], extra)
        labels = a["labels"]
        return {
            "image": normalize_image(img_c),
            "semantic": torch.from_numpy(np.ascontiguousarray(sem_c).astype(np.int64)),
            "center": tgt["center"].float(),
            "offset": tgt["offset"].float(),
            "weight": tgt["weight"].float(),
            "wsss": torch.from_numpy(np.ascontiguousarray(wsss_c).astype(np.int64)),
            "components": torch.from_numpy(component_map(np.ascontiguousarray(wsss_c), labels)),
            "labels": torch.from_numpy(labels.astype(np.float32)),
            "points": torch.from_numpy(points[:, :2].astype(np.float32)),
            "point_classes": torch.from_numpy(points[:, 2].astype(np.int64)),
            "index": int(index),
        }


def collate(samples: Sequence[dict]) -> dict:
    """Stack samples into a batch; ``points`` / ``point_classes`` are padded to the longest.

    Returns the keys of :class:`TrainData` with a leading batch dimension ``B``; ``points`` is
    ``(B, P, 2) float32`` and ``point_classes`` ``(B, P) int64`` with ``-1`` for padding
    (``P >= 1``); ``index`` is ``(B,) int64``.
    """
    out = {}
    for k in ("image", "semantic", "center", "offset", "weight", "wsss", "components", "labels"):
        out[k] = torch.stack([s[k] for s in samples])
    p = max(1, max(int(s["points"].shape[0]) for s in samples))
    pts = torch.zeros((len(samples), p, 2), dtype=torch.float32)
    pcl = torch.full((len(samples), p), -1, dtype=torch.int64)
    for b, s in enumerate(samples):
        n = s["points"].shape[0]
        pts[b, :n] = s["points"]
        pcl[b, :n] = s["point_classes"]
    out["points"], out["point_classes"] = pts, pcl
    out["index"] = torch.tensor([s["index"] for s in samples], dtype=torch.int64)
    return out


class EpochBatches(torch.utils.data.Sampler):
    """Endless, resumable batches of ``(epoch, index)`` keys for :class:`TrainData`.

    Epoch ``e`` visits ``randperm(n)`` drawn from a generator seeded with ``(seed, e)``; rank
    ``r`` of ``world`` takes every ``world``-th index from ``r``, and the last incomplete batch of
    an epoch is dropped, so every rank runs ``steps_per_epoch`` steps per epoch. Iteration ``i``
    (0-based) is always the same batch, whichever iteration the sampler started at.

    Args:
        n: dataset size.
        batch_size: samples per batch on this rank.
        seed: base seed.
        rank, world: this process's rank and the number of processes.
        start: the first iteration to yield.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0):
        if n // world < batch_size:
            raise BestieError(f"the training split has {n} images: too few for batch size {batch_size}"
                              + (f" on each of {world} processes" if world > 1 else ""))
        self.n, self.batch_size, self.seed = n, batch_size, int(seed)
        self.rank, self.world, self.start = rank, world, int(start)

    @property
    def steps_per_epoch(self) -> int:
        return (self.n // self.world) // self.batch_size

    def epoch_order(self, epoch: int) -> list[int]:
        """Indices this rank visits in ``epoch``, in order."""
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([self.seed & 0xFFFFFFFF, int(epoch)]).generate_state(1)[0]))
        perm = torch.randperm(self.n, generator=g).tolist()
        return perm[self.rank::self.world][: (self.n // self.world)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start
        spe = self.steps_per_epoch
        cached: tuple[int, list[int]] | None = None
        while True:
            epoch, pos = divmod(it, spe)
            if cached is None or cached[0] != epoch:
                cached = (epoch, self.epoch_order(epoch))
            order = cached[1]
            yield [(epoch, i) for i in order[pos * self.batch_size:(pos + 1) * self.batch_size]]
            it += 1
