"""Training samples of the boundary network: augmented images with their seed region maps.

Seeds are computed once per image from the classifier's CAMs (:func:`compute_regions`) and kept
in memory at the image's resolution; each sample is then resized (random scale around the
classifier's inference size), flipped and cropped with the image, and its region map reduced
to the boundary map's stride by nearest neighbour (as IRN's affinity labels).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..classifier.maps import activation_maps, to_tensor
from ..classifier.peaks import extract_peaks
from .affinity import IGNORE
from .model import STRIDE
from .seeds import cam_seeds, seed_regions, split_at_peaks

#: Peaks as the ``cues`` stage extracts them by default (``--method pam``).
PEAK_KERNEL, PEAK_TOPK, PEAK_MIN_CONF = 15, 25, 0.7


def compute_regions(model, dataset, fg_threshold: float, bg_threshold: float, relation: str,
                    device="cpu") -> list[np.ndarray]:
    """Per training image the ``(H, W) int32`` region map of its CAM seeds (see
    :func:`~bestie_labels.irn.seeds.seed_regions`; ``relation="peak"``: components split at the
    PAM peaks, :func:`~bestie_labels.irn.seeds.split_at_peaks`), in ``dataset.records`` order."""
    out = []
    for rec in tqdm(dataset.records, desc="irn seeds", unit="img", disable=None):
        image = dataset.load_image(rec)
        maps = activation_maps(model, image, rec.labels, device, pam=False)
        regions = seed_regions(cam_seeds(maps, rec.labels, fg_threshold, bg_threshold),
                               "class" if relation == "class" else "instance")
        if relation == "peak":
            pam = activation_maps(model, image, rec.labels, device, pam=True)
            peaks = extract_peaks(pam, rec.labels, kernel=PEAK_KERNEL, topk=PEAK_TOPK, min_conf=PEAK_MIN_CONF)
            regions = split_at_peaks(regions, peaks, pam)
        out.append(regions)
    return out


def reduce_regions(regions: np.ndarray) -> np.ndarray:
    """``(H, W) int32`` -> ``(ceil(H/4), ceil(W/4)) int32`` by nearest neighbour."""
    h, w = regions.shape
    size = ((w + STRIDE - 1) // STRIDE, (h + STRIDE - 1) // STRIDE)
    return cv2.resize(regions, size, interpolation=cv2.INTER_NEAREST)


class IrnSamples(torch.utils.data.Dataset):
    """``(x (3, crop, crop) float32, regions (crop/4, crop/4) int64)``; sample ``i`` of epoch
    ``e`` depends only on ``(seed, e, i)``.

    Args:
        dataset: the training split; ``regions`` its region maps (:func:`compute_regions`).
        base_size: shorter side before the random scale (the classifier's inference size).
        crop_size: square crop (a multiple of 4); smaller images are padded (image 0, region
            :data:`~bestie_labels.irn.affinity.IGNORE`).
        scale: range of the random scale factor.
    """

    def __init__(self, dataset, regions: list[np.ndarray], base_size: int, crop_size: int, seed: int,
                 scale: tuple[float, float] = (0.7, 1.3)) -> None:
        self.ds, self.regions, self.base_size, self.crop_size = dataset, regions, base_size, crop_size
        self.seed, self.scale, self.epoch = seed, scale, 0

    def __len__(self) -> int:
        return len(self.ds.records)

    def __getitem__(self, i: int):
        rec = self.ds.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img, reg = self.ds.load_image(rec), self.regions[i]
        h, w = img.shape[:2]
        s = self.base_size / min(h, w) * rng.uniform(*self.scale)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        reg = cv2.resize(reg, (nw, nh), interpolation=cv2.INTER_NEAREST)
        if rng.random() < 0.5:
            img, reg = img[:, ::-1], reg[:, ::-1]
        cs = self.crop_size
        ph, pw = max(cs, nh), max(cs, nw)
        x = torch.zeros(3, ph, pw)
        x[:, :nh, :nw] = to_tensor(np.ascontiguousarray(img))
        r = np.full((ph, pw), IGNORE, np.int32)
        r[:nh, :nw] = reg
        y0 = int(rng.integers(0, ph - cs + 1))
        x0 = int(rng.integers(0, pw - cs + 1))
        x = x[:, y0:y0 + cs, x0:x0 + cs].contiguous()
        r = reduce_regions(np.ascontiguousarray(r[y0:y0 + cs, x0:x0 + cs]))
        return x, torch.from_numpy(r.astype(np.int64))
