"""The augmented training samples of ``train-pam`` (official recipe: resize, flip, colour jitter, crop)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .maps import resize_short, to_tensor


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float = 0.3,
                 contrast: float = 0.3, saturation: float = 0.3, hue: float = 0.1) -> np.ndarray:
    """Random brightness, contrast, saturation and hue change of ``(H,W,3) uint8`` RGB
    (factors as torchvision's ``ColorJitter``)."""
    img = image.astype(np.float32)
    img *= rng.uniform(1 - brightness, 1 + brightness)
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    c = rng.uniform(1 - contrast, 1 + contrast)
    img = img * c + (1 - c) * grey.mean()
    s = rng.uniform(1 - saturation, 1 + saturation)
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    img = img * s + (1 - s) * grey[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    dh = rng.uniform(-hue, hue)
    if dh:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(dh * 256))) % 256
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return img


class TrainImages(torch.utils.data.Dataset):
    """Augmented training samples ``(x (3,crop,crop) float32, labels (C,) float32)``.

    The augmentation of sample ``i`` in epoch ``e`` depends only on ``(seed, e, i)``.
    """

    def __init__(self, ds, input_size: int, crop_size: int, seed: int, hue: float = 0.1) -> None:
        self.ds, self.input_size, self.crop_size, self.seed, self.hue = ds, input_size, crop_size, seed, hue
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds.records)

    def __getitem__(self, i: int):
        rec = self.ds.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        img = resize_short(self.ds.load_image(rec), self.input_size)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = color_jitter(np.ascontiguousarray(img), rng, hue=self.hue)
        x = to_tensor(img)
        cs = self.crop_size
        _, h, w = x.shape
        if h < cs or w < cs:  # pad with 0 (= the mean colour after normalisation)
            x = F.pad(x, (0, max(0, cs - w), 0, max(0, cs - h)))
            _, h, w = x.shape
        y0 = int(rng.integers(0, h - cs + 1))
        x0 = int(rng.integers(0, w - cs + 1))
        return x[:, y0:y0 + cs, x0:x0 + cs].contiguous(), torch.from_numpy(rec.labels.astype(np.float32))
