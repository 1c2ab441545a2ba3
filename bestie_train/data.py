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

**Augmentation** (training only, :mod:`bestie_train.augment`): the paper recipe's photometric
distortion and official resize, then a random scale (bilinear for the image, nearest for label
maps), a ``crop x crop`` window at a random position (an image smaller than the crop is placed
at a random position on a canvas of the mean colour, labels 255 / no instance), and a horizontal
flip with probability 1/2. Every random number of a sample comes from its own generator seeded
with ``(seed, epoch, index)``, so a sample does not depend on the number of DataLoader workers,
on the order samples are drawn in, or on whether the run was interrupted and resumed.

**Instance targets.** With a cues store (``fit --cues``, what the pipeline passes) the semantic
knowledge transfer runs on every crop, as the official loader does: connected components of the
cropped WSSS mask of each image-level class, at least ``min_area`` pixels, holding exactly one
cue that survived the crop; the center is the visible component's centroid (the cue itself for
point labels), and an instance whose cue fell outside the crop is not trained. Without one, the
full-image pseudo instances are cropped (visible ones kept, their full-image centers carried).
:func:`bestie_train.targets.make_targets` turns them into center heatmaps ``(C, S, S)``,
offsets ``(2, S, S)`` (dy, dx) and the instance-aware-guidance weight ``(S, S)``.

**Refinement inputs**: the augmented WSSS mask and its component map (connected components of
each image-level class, numbered 1.. across classes, 0 elsewhere, with the connectivity the
pseudo store's transfer used: ``transfer --connectivity``, 8 for ``--from-gt`` stores), the
image-level labels, and, for point supervision, the labelled points of the image (from
``points/<id>.txt`` of the dataset or ``points_dir``, every point of an image-level class, not
only those matched to a pseudo instance).

Batching and the resumable sampler live in :mod:`bestie_train.batches`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from bestie_labels.algorithms.components import component_map
from bestie_labels.algorithms.transfer_options import TransferOptions
from bestie_labels.core.constants import IMAGENET_MEAN, IMAGENET_STD, VOID
from bestie_labels.core.errors import BestieError
from bestie_labels.store.checks import read_cues, read_pseudo, read_wsss
from bestie_labels.store.file import Store
from bestie_labels.store.inputs import CUES, PSEUDO, WSSS, cached_store, open_input

from .augment import Geometry, draw_geometry, inside_crop, photometric_distort, warp_map, warp_points

#: ``point_offsets``: where the offsets of a point-centered instance point.
POINT_OFFSETS = ("centroid", "point")


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
            default: the dataset's points/ (demo data).
        cues: the ``cues.h5`` that ``pseudo`` was made from: the semantic knowledge transfer
            then runs on every training crop, after scale, crop and flip, with the options
            ``pseudo`` records (the official loader); None: the instances of ``pseudo`` are
            cropped (``--from-gt`` pseudo labels).
        recipe: ``"paper"`` (official resize to ``crop + 64``, scales 0.7..1.3 in steps of 0.1,
            photometric distortion) or ``"cpu"`` (uniform scale, no photometric distortion);
            see :mod:`bestie_train.augment`.
        point_offsets: where the offsets of an instance centered on its point (``center
            "point"`` pseudo labels) point: ``"centroid"`` (the official point-supervised
            target: the Gaussian at the point, the offsets to the visible instance's centroid)
            or ``"point"`` (both at the point).

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
                 points_dir: str | os.PathLike | None = None, cues: str | os.PathLike | None = None,
                 recipe: str = "cpu", point_offsets: str = "centroid"):
        if sup not in ("cls", "point"):
            raise ValueError(f"sup must be 'cls' or 'point', got {sup!r}")
        if recipe not in ("cpu", "paper"):
            raise ValueError(f"recipe must be 'cpu' or 'paper', got {recipe!r}")
        if point_offsets not in POINT_OFFSETS:
            raise ValueError(f"point_offsets must be one of {POINT_OFFSETS}, got {point_offsets!r}")
        if crop < 8:
            raise BestieError(f"crop size {crop} is too small (minimum 8)")
        self.dataset = dataset
        self.pseudo_path, self.wsss_path = os.fspath(pseudo), os.fspath(wsss)
        self.crop = int(crop)
        self.scale = (float(scale[0]), float(scale[1]))
        self.flip, self.augment = bool(flip), bool(augment)
        self.seed, self.sigma, self.sup = int(seed), float(sigma), sup
        self.resize_to = self.crop + 64 if recipe == "paper" else None
        self.scale_step = 0.1 if recipe == "paper" else 0.0
        self.photometric = recipe == "paper"
        self.num_classes = dataset.num_classes
        stores = [(self.pseudo_path, PSEUDO, "--pseudo"), (self.wsss_path, WSSS, "--wsss")]
        self.cues_path, self.transfer = None, None
        if cues is not None:
            self.cues_path = os.fspath(cues)
            self.transfer = crop_transfer_options(self.pseudo_path, self.cues_path)
            stores.append((self.cues_path, CUES, "--cues"))
        for path, stage, opt in stores:
            open_input(path, stage, dataset, opt).close()  # every image of the split present
        recorded = self.transfer or _recorded_transfer(self.pseudo_path)
        self.connectivity = recorded.connectivity  # --from-gt stores: the default 8
        self.offsets_to_centroid = recorded.center == "point" and point_offsets == "centroid"
        self.points_dir = None
        if sup == "point":
            pd = points_dir if points_dir is not None else getattr(dataset, "points_dir", None)
            if pd is None:
                raise BestieError("point supervision needs point labels: give --points DIR "
                                  "(x y cls conf files <id>.txt)", getattr(dataset, "root", None))
            if not os.path.isdir(pd):
                raise BestieError("points folder not found", pd)
            self.points_dir = os.fspath(pd)

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> dict[str, np.ndarray]:
        """The un-augmented arrays of sample ``index`` (validated against the image size).

        Returns ``image (H, W, 3) uint8``, ``semantic (H, W) uint8``, ``wsss (H, W) uint8``,
        ``instances (H, W) int64``, ``classes (N,) int64``, ``centers (N, 2) float64`` (x, y),
        ``labels (C,) bool``, ``points (P, 3) float64`` (x, y, class; empty for sup=cls) and
        ``cues (Q, 4) float64`` (x, y, class, confidence; empty without a cues store).
        """
        rec = self.dataset.records[index]
        image = self.dataset.load_image(rec)
        h, w = image.shape[:2]
        if image.shape[:2] != (rec.height, rec.width):
            raise BestieError(f"image is {w}x{h} but its record says {rec.width}x{rec.height}", rec.file_name)
        # one-line errors for stores of another size or damaged ones ("store is damaged: ...")
        # the handles are cached per process (opened again after a fork: DataLoader workers)
        p = read_pseudo(cached_store(self.pseudo_path, PSEUDO), rec, self.num_classes)
        mask = read_wsss(cached_store(self.wsss_path, WSSS), rec, self.num_classes).mask
        inst = p.instances.astype(np.int64)
        classes = p.classes.astype(np.int64)
        centers = p.centers.astype(np.float64)
        labels = np.asarray(rec.labels, bool)
        points = np.zeros((0, 3), np.float64)
        if self.sup == "point":
            from bestie_labels.formats.points import read_points

            pts = read_points(os.path.join(self.points_dir, f"{rec.image_id}.txt"), h, w,
                              self.num_classes)
            keep = labels[pts[:, 2].astype(np.int64)] if len(pts) else np.zeros(0, bool)
            points = pts[keep, :3].astype(np.float64)
        cues = np.zeros((0, 4), np.float64)
        if self.cues_path is not None:
            cues = read_cues(cached_store(self.cues_path, CUES), rec, self.num_classes).points.astype(np.float64)
        return dict(image=image, semantic=semantic_target(mask, inst, classes), wsss=mask,
                    instances=inst, classes=classes, centers=centers, labels=labels, points=points, cues=cues)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        a = self.load(index)
        rng = sample_rng(self.seed, epoch, index)
        h, w = a["semantic"].shape
        g = draw_geometry(rng, h, w, self.crop, self.scale, self.augment, self.flip,
                          self.resize_to, self.scale_step)
        image = photometric_distort(a["image"], rng) if self.photometric and self.augment else a["image"]
        img_c = warp_map(image, g, np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8), nearest=False)
        sem_c = warp_map(a["semantic"], g, VOID, nearest=True)
        wsss_c = warp_map(a["wsss"], g, VOID, nearest=True)
        if self.transfer is not None:
            inst_c, centers, classes = self._crop_transfer(wsss_c, a, g)
        else:
            inst_c, centers, classes = _carried_instances(a, g)
        points = a["points"].copy()
        points[:, :2] = warp_points(points[:, :2], g, h, w)
        points = points[inside_crop(points[:, :2], g.crop)]
        tgt = self._targets(inst_c, centers, classes, points)
        labels = a["labels"]
        return {
            "image": normalize_image(img_c),
            "semantic": torch.from_numpy(np.ascontiguousarray(sem_c).astype(np.int64)),
            "center": tgt["center"].float(),
            "offset": tgt["offset"].float(),
            "weight": tgt["weight"].float(),
            "wsss": torch.from_numpy(np.ascontiguousarray(wsss_c).astype(np.int64)),
            "components": torch.from_numpy(component_map(np.ascontiguousarray(wsss_c), labels, self.connectivity)),
            "labels": torch.from_numpy(labels.astype(np.float32)),
            "points": torch.from_numpy(points[:, :2].astype(np.float32)),
            "point_classes": torch.from_numpy(points[:, 2].astype(np.int64)),
            "index": int(index),
        }

    def crop_cues(self, a: dict, g: Geometry) -> np.ndarray:
        """The cues of ``a`` that fall inside the crop of ``g``, in crop coordinates: ``(Q', 4) float32``."""
        h, w = a["semantic"].shape
        cues = a["cues"].copy()
        cues[:, :2] = warp_points(cues[:, :2], g, h, w)
        return cues[inside_crop(cues[:, :2], g.crop)].astype(np.float32)

    def _crop_transfer(self, wsss_c: np.ndarray, a: dict, g: Geometry):
        """The semantic knowledge transfer on the crop: components of the cropped WSSS mask
        holding exactly one cue that survived the crop (cues outside it train nothing)."""
        from bestie_labels.algorithms.knowledge_transfer import transfer_instances

        r = transfer_instances(wsss_c, self.crop_cues(a, g), a["labels"], **self.transfer.keywords())
        return (r["instances"].astype(np.int64), r["centers"].astype(np.float64),
                r["classes"].astype(np.int64))

    def _targets(self, inst_c, centers, classes, points) -> dict:
        from .targets import make_targets

        s = inst_c.shape[0]
        offset_centers = None
        if self.offsets_to_centroid:
            from bestie_labels.algorithms.knowledge_transfer import instance_centroids

            # an instance with no pixel in the crop trains no offset: its center is as good as any
            cen = instance_centroids(inst_c, centers.shape[0])
            offset_centers = torch.from_numpy(np.where(np.isnan(cen), centers, cen).astype(np.float32))
        tgt = make_targets(torch.from_numpy(np.ascontiguousarray(inst_c)),
                           torch.from_numpy(centers.astype(np.float32)),
                           torch.from_numpy(classes), self.num_classes, sigma=self.sigma,
                           offset_centers=offset_centers)
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
        return tgt


def _carried_instances(a: dict, g: Geometry):
    """The full-image pseudo instances cropped with ``g``: visible ones only, renumbered 1..K in
    their original order, with their full-image centers moved into the crop."""
    h, w = a["semantic"].shape
    inst_c = warp_map(a["instances"], g, 0, nearest=True)
    classes = a["classes"]
    n = classes.shape[0]
    present = np.flatnonzero(np.bincount(inst_c.ravel(), minlength=n + 1)[1:] > 0)
    lut = np.zeros(n + 1, np.int64)
    lut[present + 1] = np.arange(1, present.size + 1)
    centers = warp_points(a["centers"], g, h, w)
    return lut[inst_c], centers[present], classes[present]


def crop_transfer_options(pseudo_path: str, cues_path: str) -> TransferOptions:
    """The transfer options recorded in ``pseudo.h5``, after checking that it was made from
    ``cues.h5`` by the transfer (not ``--from-gt``)."""
    with Store(pseudo_path, stage=PSEUDO) as p:
        opts = TransferOptions.from_store(p.options, pseudo_path)
        want = p.inputs.get("cues")
    if opts.from_gt:
        raise BestieError("--cues: this pseudo store holds GT instances (--from-gt), there is no transfer "
                          "to run per crop; train without --cues", pseudo_path)
    with Store(cues_path, stage=CUES) as c:
        if c.fingerprint != want:
            raise BestieError("--cues: not the cues store the pseudo labels were made from", cues_path)
    return opts


def _recorded_transfer(pseudo_path: str) -> TransferOptions:
    """The transfer options ``pseudo.h5`` records (a ``--from-gt`` store: its center and the
    default connectivity 8)."""
    with Store(pseudo_path, stage=PSEUDO) as p:
        return TransferOptions.from_store(p.options, pseudo_path)
