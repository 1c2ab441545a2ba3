"""Training of the PAM classifier with image-level labels (official ``PAM/train.py`` recipe).

Default recipe for ``vgg16`` / ``resnet50`` (the official one): SGD with Nesterov momentum 0.9,
weight decay 5e-4, batch 5, 15 epochs, lr 1e-3 for backbone weights (x2 for backbone biases,
x10 for the new layers' weights, x20 for their biases), divided by 10 at the starts of epochs 5
and 10; images resized so the shorter side is 384, random horizontal flip, colour jitter
(brightness/contrast/saturation 0.3, hue 0.1), random 321x321 crop; multi-label soft-margin
loss. With another number of epochs the two decays stay at 1/3 and 2/3 of the run.

``tiny`` (demo / tests, trained from scratch): batch 8, 16 epochs, lr 0.05 for every layer (the
x10/x20 multipliers are for fine-tuning a pretrained backbone and make a from-scratch network
diverge), input size 128, crop 112, no hue jitter (the demo classes differ by colour family);
PAM alpha 0.4 (0.7 keeps too little of each channel for a network learning from scratch); at
inference the images are upscaled to a shorter side of 2 x crop = 224 (``test_size``) so that the
stride-8 maps separate neighbouring objects. See :data:`DEFAULTS`.

After each epoch the mean average precision of the image-level classification on the
validation split is computed (numpy) and a checkpoint is written atomically
(:mod:`.checkpoint`); ``resume=True`` continues an interrupted run exactly (per-sample
augmentation and batch order depend only on seed, epoch and index).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import BestieError, StaleOutputError
from .checkpoint import FORMAT, VERSION, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .maps import resize_short, to_tensor
from .model import BACKBONES, PAMClassifier, build_classifier

#: Recipe defaults per backbone (None in a ``train_pam`` argument means "use these").
DEFAULTS: dict[str, dict[str, Any]] = {
    "vgg16": dict(epochs=15, batch_size=5, lr=1e-3, input_size=384, crop_size=321, hue=0.1,
                  lr_mult=(1.0, 2.0, 10.0, 20.0), alpha=0.7, test_scale=1.0),
    "resnet50": dict(epochs=15, batch_size=5, lr=1e-3, input_size=384, crop_size=321, hue=0.1,
                     lr_mult=(1.0, 2.0, 10.0, 20.0), alpha=0.7, test_scale=1.0),
    # The tiny network trains from scratch: every layer is new, so one lr for all (the x10/x20
    # multipliers make the new layers diverge), and no hue jitter (the demo classes differ by
    # colour family). From scratch, PAM with alpha 0.7 keeps too little of each channel to
    # learn (val mAP 0.60 vs 0.98 with alpha 0.4 on the demo); at inference the image is
    # upscaled to twice the crop size (224) so that the stride-8 maps separate neighbouring
    # objects. test_size (shorter side at inference) = test_scale x crop_size.
    "tiny": dict(epochs=16, batch_size=8, lr=5e-2, input_size=128, crop_size=112, hue=0.0,
                 lr_mult=(1.0, 1.0, 1.0, 1.0), alpha=0.4, test_scale=2.0),
}
# Options that must match to resume a run (epochs may grow).
_RESUME_KEYS = ("backbone", "alpha", "pam", "lr", "batch_size", "input_size", "crop_size", "seed",
                "output_stride", "decay_points", "data_fingerprint", "pretrained")


def decay_points(epochs: int) -> list[int]:
    """1-based epochs at whose start the lr is divided by 10: 1/3 and 2/3 of the run
    (``[5, 10]`` for 15 epochs, as the official recipe)."""
    pts = sorted({round(epochs * 5 / 15), round(epochs * 10 / 15)})
    return [p for p in pts if 2 <= p <= epochs]


# ------------------------------------------------------------------------------------------
# metric
# ------------------------------------------------------------------------------------------
def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of ``(N,) float`` scores for ``(N,) bool`` targets.

    The area under the step precision-recall curve, thresholds at distinct scores (tied scores
    form one step), as ``sklearn.metrics.average_precision_score``. NaN without positives.
    """
    scores = np.asarray(scores, np.float64).ravel()
    targets = np.asarray(targets, bool).ravel()
    npos = int(targets.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], targets[order]
    tp = np.cumsum(t)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # end of each tie group
    tp = tp[last]
    precision = tp / (last + 1)
    recall = tp / npos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes (with at least one positive) of :func:`average_precision`.

    ``scores (N, C) float``, ``targets (N, C) bool``; NaN if no class has a positive.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, bool)
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1]) if targets[:, k].any()]
    return float(np.mean(aps)) if aps else float("nan")


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
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


@torch.no_grad()
def predict_scores(model: PAMClassifier, ds, size: int | None, device) -> tuple[np.ndarray, np.ndarray]:
    """Image-level sigmoid scores ``(N, C) float32`` and labels ``(N, C) bool`` of a split
    (each image resized so its shorter side is ``size``)."""
    model.eval()
    scores = np.zeros((len(ds.records), model.num_classes), np.float32)
    for i, rec in enumerate(ds.records):
        x = to_tensor(resize_short(ds.load_image(rec), size))[None].to(device)
        scores[i] = torch.sigmoid(model(x))[0].float().cpu().numpy()
    labels = np.stack([r.labels for r in ds.records]).astype(bool) if ds.records else np.zeros((0, model.num_classes), bool)
    return scores, labels


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
def _resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise BestieError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


def train_pam(train_ds, out: str | os.PathLike, val_ds=None, backbone: str = "vgg16",
              epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
              alpha: float | None = None, pam: bool = True, pretrained: str | os.PathLike | None = None,
              device: str = "cpu", seed: int = 0, resume: bool = False, force: bool = False,
              input_size: int | None = None, crop_size: int | None = None, workers: int = 1,
              output_stride: int = 16, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the PAM (or, with ``pam=False``, plain CAM) classifier and write ``out``.

    Args:
        train_ds, val_ds: :class:`~bestie_labels.datasets.base.Dataset` of the training and
            (optional) validation split; image-level labels come from their records.
        out: checkpoint path, rewritten atomically after every epoch.
        backbone: ``vgg16``, ``resnet50`` or ``tiny``; ``None`` recipe values come from
            :data:`DEFAULTS` of that backbone.
        alpha, pam: PAM controller value (None: 0.7, tiny 0.4), PAM on/off.
        pretrained: torchvision-layout weights for the backbone (missing/unused keys printed).
        resume: continue the run in ``out`` (same options; ``epochs`` may be larger).
        force: start over even if ``out`` exists; with ``resume``, start over only when the
            checkpoint was made with other options or data (what a pipeline wants).
        workers: data-loading worker processes (1 = in the main process).

    Returns:
        ``dict(path, epoch, history=[dict(epoch, loss, map, seconds)], options)``.
    """
    if backbone not in BACKBONES:
        raise BestieError(f"unknown backbone '{backbone}' (choose from {', '.join(BACKBONES)})")
    d = DEFAULTS[backbone]
    epochs = d["epochs"] if epochs is None else int(epochs)
    batch_size = d["batch_size"] if batch_size is None else int(batch_size)
    lr = d["lr"] if lr is None else float(lr)
    input_size = d["input_size"] if input_size is None else int(input_size)
    crop_size = d["crop_size"] if crop_size is None else int(crop_size)
    alpha = d["alpha"] if alpha is None else float(alpha)
    if epochs < 1 or batch_size < 1 or lr <= 0 or crop_size < 8 or input_size < 8:
        raise BestieError("epochs, batch size, lr, input and crop size must be positive")
    if len(train_ds.records) == 0:
        raise BestieError(f"the '{train_ds.split}' split has no images", train_ds.root)
    if val_ds is not None and list(val_ds.class_names) != list(train_ds.class_names):
        raise BestieError("the validation split has other class names than the training split", val_ds.root)
    out = Path(out)
    dev = _resolve_device(device)
    options = dict(backbone=backbone, alpha=float(alpha), pam=bool(pam), lr=lr, batch_size=batch_size,
                   input_size=input_size, crop_size=crop_size, test_size=round(d["test_scale"] * crop_size),
                   seed=int(seed), output_stride=int(output_stride),
                   decay_points=decay_points(epochs) if not resume else None, epochs=epochs,
                   num_classes=train_ds.num_classes, split=train_ds.split,
                   val_split=None if val_ds is None else val_ds.split,
                   data_fingerprint=train_ds.fingerprint(),
                   pretrained=None if pretrained is None else os.path.abspath(pretrained))

    ck = None
    if out.exists():
        if resume:
            ck = load_checkpoint(out)
            old = ck["options"]
            options["decay_points"] = old.get("decay_points")
            diff = [k for k in _RESUME_KEYS if old.get(k) != options.get(k)]
            if (diff or list(ck["class_names"]) != list(train_ds.class_names)) and force:
                ck = None  # --resume --force: continue a matching run, else start over
                options["decay_points"] = None
            elif diff or list(ck["class_names"]) != list(train_ds.class_names):
                raise StaleOutputError("checkpoint was made with other options or data ("
                                       + ", ".join(f"{k}: {old.get(k)!r} -> {options.get(k)!r}" for k in diff)
                                       + "); rerun with --force to start over", out)
        elif not force:
            raise BestieError("checkpoint exists; pass --resume to continue it or --force to start over", out)
    if options["decay_points"] is None:
        options["decay_points"] = decay_points(epochs)

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    model = build_classifier(backbone, train_ds.num_classes, pam=pam, alpha=alpha, output_stride=output_stride)
    if ck is None:
        if pretrained is not None:
            from .official import load_start_weights

            load_start_weights(model, pretrained)  # ImageNet trunk, official PAM.pth or ours
        elif backbone != "tiny":
            log(f"WARNING: no --pretrained weights: the {backbone} backbone trains from scratch "
                "(the official recipe starts from ImageNet weights)")
    model.to(dev)
    groups = model.parameter_groups()
    optimizer = torch.optim.SGD(
        [{"params": g, "lr": lr * m} for g, m in zip(groups, d["lr_mult"]) if g],
        lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    start, history = 0, []
    if ck is not None:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        start, history = int(ck["epoch"]), list(ck.get("history", []))
        options["epochs"] = epochs
        log(f"resuming {out} after epoch {start}")
    base = [g["lr"] for g in optimizer.param_groups]

    data = TrainImages(train_ds, input_size, crop_size, seed, hue=d["hue"])
    n = len(data)
    drop_last = n > batch_size  # a batch of one would break BatchNorm statistics

    for epoch in range(start + 1, epochs + 1):
        decays = sum(p <= epoch for p in options["decay_points"])
        for g, b in zip(optimizer.param_groups, base):
            g["lr"] = b * 0.1 ** decays
        data.epoch = epoch
        gen = torch.Generator().manual_seed(int(seed) * 100003 + epoch)
        loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=gen, drop_last=drop_last,
                            num_workers=0 if workers <= 1 else workers, pin_memory=dev.type == "cuda")
        model.train()
        t0 = time.time()
        total, seen = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", leave=False, dynamic_ncols=True)
        for x, y in bar:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = F.multilabel_soft_margin_loss(model(x), y)
            if not torch.isfinite(loss):
                raise BestieError(f"training diverged (loss {loss.item()}) in epoch {epoch}; lower --lr", out)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * x.shape[0]
            seen += x.shape[0]
            bar.set_postfix(loss=f"{total / seen:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2g}")
        bar.close()
        mAP = float("nan")
        if val_ds is not None and len(val_ds.records):
            mAP = mean_average_precision(*predict_scores(model, val_ds, crop_size, dev))
        rec = dict(epoch=epoch, loss=total / max(seen, 1), map=mAP, seconds=time.time() - t0)
        history.append(rec)
        log(f"epoch {epoch}/{epochs}: loss {rec['loss']:.4f}  val mAP {mAP:.4f}  ({rec['seconds']:.1f} s)")
        save_checkpoint(out, {
            "format": FORMAT, "version": VERSION, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "options": options, "class_names": list(train_ds.class_names), "epoch": epoch,
            "optimizer": optimizer.state_dict(), "rng": rng_state(), "history": history,
        })
    if start >= epochs:
        log(f"{out} already holds {start} epochs (asked for {epochs}); nothing to do")
    return {"path": str(out), "epoch": max(start, epochs), "history": history, "options": options}
