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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..core.errors import BestieError, StaleOutputError
from ..core.training import previous_run, progress_bar, resolve_device, rng_state, set_rng_state
from .checkpoint import FORMAT, VERSION, load_checkpoint, save_checkpoint
from .image_ap import mean_average_precision, predict_scores
from .model import build_classifier
from .train_data import TrainImages
from .train_options import DEFAULTS, PamOptions

# Options that must match to resume a run (epochs may grow).
_RESUME_KEYS = ("backbone", "alpha", "pam", "lr", "batch_size", "input_size", "crop_size", "seed",
                "output_stride", "decay_points", "data_fingerprint", "pretrained")


def decay_points(epochs: int) -> list[int]:
    """1-based epochs at whose start the lr is divided by 10: 1/3 and 2/3 of the run
    (``[5, 10]`` for 15 epochs, as the official recipe)."""
    pts = sorted({round(epochs * 5 / 15), round(epochs * 10 / 15)})
    return [p for p in pts if 2 <= p <= epochs]


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
_resolve_device = resolve_device  # the name train-irn imports


@dataclass
class PamRun:
    """A ``train_pam`` run: resolved options, what the checkpoint records (``options``,
    ``history``), the training objects, and ``start``, the epochs already done."""

    opts: PamOptions
    out: Path
    device: torch.device
    options: dict
    class_names: list
    model: Any = None
    optimizer: Any = None
    base_lrs: list = field(default_factory=list)
    start: int = 0
    history: list = field(default_factory=list)


def train_pam(train_ds, out: str | os.PathLike, val_ds=None, resume: bool = False, force: bool = False,
              log: Callable[[str], None] = print, **options) -> dict[str, Any]:
    """Train the PAM (or, with ``pam=False``, plain CAM) classifier and write ``out``.

    Args:
        train_ds, val_ds: :class:`~bestie_labels.datasets.base.Dataset` of the training and
            (optional) validation split; image-level labels come from their records.
        out: checkpoint path, rewritten atomically after every epoch.
        resume: continue the run in ``out`` (same options; ``epochs`` may be larger).
        force: start over even if ``out`` exists; with ``resume``, start over only when the
            checkpoint was made with other options or data (what a pipeline wants).
        **options: the fields of :class:`~bestie_labels.classifier.train_options.PamOptions`:
            ``backbone`` (``vgg16``, ``resnet50`` or ``tiny``; ``None`` recipe values come from
            :data:`DEFAULTS` of that backbone), ``epochs``, ``batch_size``, ``lr``, ``alpha``
            and ``pam`` (PAM controller value, PAM on/off), ``pretrained`` (torchvision-layout
            weights for the backbone; missing/unused keys printed), ``input_size``,
            ``crop_size``, ``device``, ``seed``, ``workers`` (data-loading worker processes,
            1 = in the main process), ``output_stride``.

    Returns:
        ``dict(path, epoch, history=[dict(epoch, loss, map, seconds)], options)``.
    """
    run = _prepare(train_ds, out, val_ds, PamOptions(**options).resolve(), resume, force, log)
    opts = run.opts
    data = TrainImages(train_ds, opts.input_size, opts.crop_size, opts.seed, hue=DEFAULTS[opts.backbone]["hue"])
    for epoch in range(run.start + 1, opts.epochs + 1):
        t0 = time.time()
        loss = _train_epoch(run, data, epoch)
        mAP = float("nan")
        if val_ds is not None and len(val_ds.records):
            mAP = mean_average_precision(*predict_scores(run.model, val_ds, opts.crop_size, run.device))
        rec = dict(epoch=epoch, loss=loss, map=mAP, seconds=time.time() - t0)
        run.history.append(rec)
        log(f"epoch {epoch}/{opts.epochs}: loss {rec['loss']:.4f}  val mAP {mAP:.4f}  ({rec['seconds']:.1f} s)")
        _save(run, epoch)
    if run.start >= opts.epochs:
        log(f"{run.out} already holds {run.start} epochs (asked for {opts.epochs}); nothing to do")
    return {"path": str(run.out), "epoch": max(run.start, opts.epochs), "history": run.history,
            "options": run.options}


def _prepare(train_ds, out, val_ds, opts: PamOptions, resume: bool, force: bool, log) -> PamRun:
    """Check the splits, resume or start the run, build the network and the optimizer."""
    if len(train_ds.records) == 0:
        raise BestieError(f"the '{train_ds.split}' split has no images", train_ds.root)
    if val_ds is not None and list(val_ds.class_names) != list(train_ds.class_names):
        raise BestieError("the validation split has other class names than the training split", val_ds.root)
    run = PamRun(opts=opts, out=Path(out), device=resolve_device(opts.device),
                 options=_recorded_options(opts, train_ds, val_ds, resume), class_names=list(train_ds.class_names))
    ck = _resumed_checkpoint(run, resume, force)
    if run.options["decay_points"] is None:
        run.options["decay_points"] = decay_points(opts.epochs)
    _build(run, ck, log)
    return run


def _recorded_options(opts: PamOptions, train_ds, val_ds, resume: bool) -> dict:
    """The options a checkpoint records (``decay_points`` None when resuming: taken from it)."""
    d = DEFAULTS[opts.backbone]
    return dict(backbone=opts.backbone, alpha=opts.alpha, pam=bool(opts.pam), lr=opts.lr,
                batch_size=opts.batch_size, input_size=opts.input_size, crop_size=opts.crop_size,
                test_size=round(d["test_scale"] * opts.crop_size), seed=int(opts.seed),
                output_stride=int(opts.output_stride),
                decay_points=decay_points(opts.epochs) if not resume else None, epochs=opts.epochs,
                num_classes=train_ds.num_classes, split=train_ds.split,
                val_split=None if val_ds is None else val_ds.split, data_fingerprint=train_ds.fingerprint(),
                pretrained=None if opts.pretrained is None else os.path.abspath(opts.pretrained))


def _resumed_checkpoint(run: PamRun, resume: bool, force: bool) -> dict | None:
    """The checkpoint in ``out`` when the run continues it (same options and data), else None."""
    options = run.options

    def check(ck: dict) -> None:
        old = ck["options"]
        options["decay_points"] = old.get("decay_points")
        diff = [k for k in _RESUME_KEYS if old.get(k) != options.get(k)]
        if diff or list(ck["class_names"]) != run.class_names:
            options["decay_points"] = None
            raise StaleOutputError("checkpoint was made with other options or data ("
                                   + ", ".join(f"{k}: {old.get(k)!r} -> {options.get(k)!r}" for k in diff)
                                   + "); rerun with --force to start over", run.out)

    return previous_run(run.out, resume, force, load_checkpoint, check,
                        exists="checkpoint exists; pass --resume to continue it or --force to start over")


def _build(run: PamRun, ck: dict | None, log) -> None:
    """Seed, build the classifier (start weights or ``ck``) and its SGD optimizer."""
    opts = run.opts
    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed % 2**32)
    run.model = build_classifier(opts.backbone, run.options["num_classes"], pam=opts.pam, alpha=opts.alpha,
                                 output_stride=opts.output_stride)
    if ck is None:
        if opts.pretrained is not None:
            from .official import load_start_weights

            load_start_weights(run.model, opts.pretrained)  # ImageNet trunk, official PAM.pth or ours
        elif opts.backbone != "tiny":
            log(f"WARNING: no --pretrained weights: the {opts.backbone} backbone trains from scratch "
                "(the official recipe starts from ImageNet weights)")
    run.model.to(run.device)
    groups = run.model.parameter_groups()
    run.optimizer = torch.optim.SGD(
        [{"params": g, "lr": opts.lr * m} for g, m in zip(groups, DEFAULTS[opts.backbone]["lr_mult"]) if g],
        lr=opts.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    if ck is not None:
        run.model.load_state_dict(ck["model"])
        run.optimizer.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        run.start, run.history = int(ck["epoch"]), list(ck.get("history", []))
        log(f"resuming {run.out} after epoch {run.start}")
    run.base_lrs = [g["lr"] for g in run.optimizer.param_groups]


def _train_epoch(run: PamRun, data: TrainImages, epoch: int) -> float:
    """One epoch (lr divided by 10 at each decay point passed); returns its mean loss."""
    opts, dev, optimizer = run.opts, run.device, run.optimizer
    decays = sum(p <= epoch for p in run.options["decay_points"])
    for g, b in zip(optimizer.param_groups, run.base_lrs):
        g["lr"] = b * 0.1 ** decays
    data.epoch = epoch
    gen = torch.Generator().manual_seed(int(opts.seed) * 100003 + epoch)
    loader = DataLoader(data, batch_size=opts.batch_size, shuffle=True, generator=gen,
                        drop_last=len(data) > opts.batch_size,  # a batch of one would break BatchNorm statistics
                        num_workers=0 if opts.workers <= 1 else opts.workers, pin_memory=dev.type == "cuda")
    run.model.train()
    total, seen = 0.0, 0
    bar = progress_bar(loader, desc=f"epoch {epoch}/{opts.epochs}", leave=False)
    for x, y in bar:
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        loss = F.multilabel_soft_margin_loss(run.model(x), y)
        if not torch.isfinite(loss):
            raise BestieError(f"training diverged (loss {loss.item()}) in epoch {epoch}; lower --lr", run.out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * x.shape[0]
        seen += x.shape[0]
        bar.set_postfix(loss=f"{total / seen:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2g}")
    bar.close()
    return total / max(seen, 1)


def _save(run: PamRun, epoch: int) -> None:
    """Rewrite the checkpoint after ``epoch`` (layout in :mod:`.checkpoint`)."""
    save_checkpoint(run.out, {
        "format": FORMAT, "version": VERSION,
        "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "options": run.options, "class_names": run.class_names, "epoch": epoch,
        "optimizer": run.optimizer.state_dict(), "rng": rng_state(), "history": run.history,
    })
