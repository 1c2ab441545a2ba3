"""Training of the IRN boundary network from a PAM classifier's own CAMs (``train-irn``).

1. Seeds: the classifier's CAMs (PAM off, flip test-time augmentation, as ``wsss --method cam``)
   give confident foreground (``fg_threshold``), confident background (``bg_threshold``) and
   uncertain pixels (:mod:`.seeds`); with ``relation="instance"`` each connected seed component
   is its own region.
2. The boundary head on the frozen classifier trunk (:mod:`.model`) is trained with IRN's
   affinity loss (:mod:`.loss`) on pairs within ``radius`` (stride-4 pixels): SGD, momentum 0.9,
   weight decay 1e-4, poly decay (power 0.9), random scale / flip / crop.

Defaults (:data:`DEFAULTS`) follow IRN for the paper-scale backbones (3 epochs, batch 32, crop
512, lr 0.1, radius 10, thresholds 0.30 / 0.05); the ``tiny`` demo classifier uses a crop of its
inference size and more epochs of its small split. The checkpoint is written atomically after
every epoch; ``resume=True`` continues an interrupted run exactly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..classifier.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..classifier.train import _resolve_device
from ..core.errors import BestieError, StaleOutputError
from ..core.fileio import sha256_file
from .checkpoint import FORMAT, VERSION, classifier_from, read_irn_checkpoint
from .data import IrnSamples, compute_regions
from .loss import affinity_loss
from ..core.torch_threads import threads_for
from ..core.training import refuse_existing
from .model import BoundaryNet
from .seeds import RELATIONS

_COMMON = dict(lr=0.1, radius=10, fg_threshold=0.30, bg_threshold=0.05, relation="instance")
#: Recipe per classifier backbone (None in a :func:`train_irn` argument means "use these";
#: ``crop_size`` None = the classifier's inference size).
DEFAULTS: dict[str, dict[str, Any]] = {
    "vgg16": dict(_COMMON, epochs=3, batch_size=32, crop_size=512),
    "resnet50": dict(_COMMON, epochs=3, batch_size=32, crop_size=512),
    # The tiny classifier's CAMs are broad (its CAM baseline's best background score is 0.3,
    # IRN's ResNet-50 CAMs use 0.05 / 0.30): on the demo train split, seeds at 0.30 / 0.05 left
    # whole images uncertain and the walk flooded them (190 TP, 68.6% precision, mIoU 67.9);
    # 0.50 / 0.15 gave 192 TP, 70.3%, 68.9; 0.50 / 0.25: 228 TP, 77.3%, 79.0; 0.50 / 0.35: 268
    # TP, 84.5%, mIoU 90.1 (4 epochs, no peak split; the CAM baseline: 202 TP, 64.1%, 76.2).
    "tiny": dict(_COMMON, epochs=8, batch_size=8, crop_size=None, radius=5, fg_threshold=0.50,
                 bg_threshold=0.35),
}
# Options that must match to resume a run (epochs may grow).
_RESUME_KEYS = ("lr", "radius", "fg_threshold", "bg_threshold", "relation", "batch_size", "crop_size",
                "seed", "classifier_sha256", "data_fingerprint")


def _options(train_ds, classifier_ck: dict, classifier_path, **given) -> dict[str, Any]:
    backbone = classifier_ck["options"]["backbone"]
    d = DEFAULTS.get(backbone, DEFAULTS["vgg16"])
    o = {k: (d[k] if given.get(k) is None else given[k]) for k in d}
    test_size = classifier_ck["options"].get("test_size") or classifier_ck["options"].get("crop_size")
    o["crop_size"] = int(o["crop_size"] or test_size)
    o["crop_size"] -= o["crop_size"] % 4
    if o["relation"] not in RELATIONS:
        raise BestieError(f"relation must be one of {', '.join(RELATIONS)}, got {o['relation']!r}")
    if int(o["epochs"]) < 1 or int(o["batch_size"]) < 1 or float(o["lr"]) <= 0 or int(o["radius"]) < 2:
        raise BestieError("epochs, batch size and lr must be positive and radius >= 2")
    if not 0 <= float(o["bg_threshold"]) < float(o["fg_threshold"]) <= 1:
        raise BestieError("thresholds must satisfy 0 <= bg_threshold < fg_threshold <= 1")
    return dict(o, backbone=backbone, base_size=int(test_size), seed=int(given.get("seed") or 0),
                classifier_sha256=sha256_file(classifier_path), data_fingerprint=train_ds.fingerprint(),
                split=train_ds.split, epochs=int(o["epochs"]))


def _previous(out: Path, options: dict, resume: bool, force: bool) -> dict | None:
    """The checkpoint to continue, or None to start over (see :func:`train_irn`)."""
    if not out.exists():
        return None
    if not resume:
        if force:
            return None
        refuse_existing(out, read_irn_checkpoint, "checkpoint exists; pass --resume to continue it or --force to start over")
    ck = read_irn_checkpoint(out)
    diff = [k for k in _RESUME_KEYS if ck["options"].get(k) != options.get(k)]
    if not diff:
        return ck
    if force:
        return None
    raise StaleOutputError("checkpoint was made with other options or data (" + ", ".join(
        f"{k}: {ck['options'].get(k)!r} -> {options.get(k)!r}" for k in diff) + "); rerun with --force", out)


def _epoch(net, loader, optimizer, schedule, radius: int, dev, desc: str) -> float:
    """One pass over ``loader``; returns the mean total loss."""
    net.train()
    total, seen = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=None)
    for x, regions in bar:
        for g, base in zip(optimizer.param_groups, schedule["base"]):
            g["lr"] = base * (1 - schedule["step"] / schedule["max"]) ** 0.9
        x, regions = x.to(dev, non_blocking=True), regions.to(dev, non_blocking=True)
        loss = affinity_loss(net(x), regions, radius)["total"]
        if not torch.isfinite(loss):
            raise BestieError(f"training diverged (loss {loss.item()}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule["step"] += 1
        total += loss.item() * x.shape[0]
        seen += x.shape[0]
        bar.set_postfix(loss=f"{total / seen:.4f}")
    bar.close()
    return total / max(seen, 1)


def train_irn(train_ds, checkpoint: str | os.PathLike, out: str | os.PathLike, epochs: int | None = None,
              batch_size: int | None = None, lr: float | None = None, radius: int | None = None,
              fg_threshold: float | None = None, bg_threshold: float | None = None,
              relation: str | None = None, crop_size: int | None = None, device: str = "cpu", seed: int = 0,
              resume: bool = False, force: bool = False, workers: int = 1,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the boundary network of ``checkpoint`` (a PAM classifier) and write ``out``.

    ``None`` arguments take :data:`DEFAULTS` of the classifier's backbone. ``resume`` continues
    the run in ``out`` (same options; ``epochs`` may grow); ``force`` starts over, with
    ``resume`` only when ``out`` was made with other options or data (what a pipeline wants).

    Returns ``dict(path, epoch, history=[dict(epoch, loss, seconds)], options)``.
    """
    out, dev = Path(out), _resolve_device(device)
    cls_ck = load_checkpoint(checkpoint)
    if list(cls_ck["class_names"]) != list(train_ds.class_names):
        raise BestieError("the classifier was trained for other classes than this dataset's", checkpoint)
    if len(train_ds.records) == 0:
        raise BestieError(f"the '{train_ds.split}' split has no images", train_ds.root)
    options = _options(train_ds, cls_ck, checkpoint, epochs=epochs, batch_size=batch_size, lr=lr,
                       radius=radius, fg_threshold=fg_threshold, bg_threshold=bg_threshold,
                       relation=relation, crop_size=crop_size, seed=seed)
    ck = _previous(out, options, resume, force)
    with threads_for(options["backbone"], dev):
        return _train(train_ds, cls_ck, out, options, ck, dev, seed, workers, log)


def _train(train_ds, cls_ck: dict, out: Path, options: dict, ck: dict | None, dev, seed: int, workers: int,
           log: Callable[[str], None]) -> dict[str, Any]:
    """The training loop of :func:`train_irn` (``ck``: the checkpoint to continue, or None)."""
    torch.manual_seed(seed)
    classifier = classifier_from(cls_ck)
    net = BoundaryNet(classifier).to(dev)  # built on the CPU (it probes the trunk), then moved
    optimizer = torch.optim.SGD(net.head_parameters(), lr=options["lr"], momentum=0.9, weight_decay=1e-4)
    start, history = 0, []
    if ck is not None:
        net.load_state_dict(ck["head"], strict=False)
        optimizer.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        start, history = int(ck["epoch"]), list(ck.get("history", []))
        log(f"resuming {out} after epoch {start}")
    if start >= options["epochs"]:
        log(f"{out} already holds {start} epochs (asked for {options['epochs']}); nothing to do")
        return {"path": str(out), "epoch": start, "history": history, "options": options}
    regions = compute_regions(classifier, train_ds, options["fg_threshold"], options["bg_threshold"],
                              options["relation"], dev)
    data = IrnSamples(train_ds, regions, options["base_size"], options["crop_size"], seed)
    bs = options["batch_size"]
    steps = max(1, len(data) // bs if len(data) > bs else 1)
    schedule = {"base": [options["lr"]], "step": start * steps, "max": options["epochs"] * steps}
    cls_store = {k: cls_ck[k] for k in ("model", "options", "class_names")}
    for epoch in range(start + 1, options["epochs"] + 1):
        data.epoch = epoch
        gen = torch.Generator().manual_seed(int(seed) * 100003 + epoch)
        loader = DataLoader(data, batch_size=bs, shuffle=True, generator=gen, drop_last=len(data) > bs,
                            num_workers=0 if workers <= 1 else workers)
        t0 = time.time()
        loss = _epoch(net, loader, optimizer, schedule, options["radius"], dev, f"irn epoch {epoch}/{options['epochs']}")
        history.append(dict(epoch=epoch, loss=loss, seconds=time.time() - t0))
        log(f"irn epoch {epoch}/{options['epochs']}: loss {loss:.4f} ({history[-1]['seconds']:.1f} s)")
        save_checkpoint(out, {"format": FORMAT, "version": VERSION, "options": options, "epoch": epoch,
                              "head": {k: v.detach().cpu() for k, v in net.head_state_dict().items()},
                              "classifier": cls_store, "optimizer": optimizer.state_dict(),
                              "rng": rng_state(), "history": history})
    return {"path": str(out), "epoch": options["epochs"], "history": history, "options": options}
