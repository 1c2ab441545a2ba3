"""The training loop: Adam + warm-up/poly schedule, AMP, DistributedDataParallel, exact resume.

One call of :func:`fit` trains the Panoptic-DeepLab network on pseudo labels (``pseudo.h5`` and
``wsss.h5`` of a split), with instance-aware guidance and online self-refinement (paper
Sec. 3.4-3.5), and writes into the run folder ``out``:

* ``last.pt``: the full training state (model, optimizer, scheduler, AMP scaler, iteration,
  RNG states, options, class names, best metric), written atomically every ``ckpt_every``
  iterations and at the end;
* ``best.pt``: the weights with the best validation VOC mAP50 so far (the final weights when
  there is no validation split);
* ``metrics.jsonl``: one JSON object per line: ``{"kind": "train", "iter", "epoch", "lr",
  "total", "semantic", "center_pseudo", ..., "it_per_s"}`` every ``log_every`` iterations and
  ``{"kind": "val", "iter", "mAP50", "mAP25", ..., "best"}`` after each validation; each line is
  written, flushed and fsynced on its own;
* ``curves.png``: the loss terms and the validation mAP50 against the iteration.

**Resume.** ``resume=True`` continues from ``last.pt`` when it exists (and starts afresh when it
does not); ``metrics.jsonl`` lines after the resumed iteration are dropped. The run is exactly
the uninterrupted one: batches depend only on ``(seed, iteration)`` (see
:class:`~bestie_train.data.EpochBatches`), augmentation only on ``(seed, epoch, index)``, and the
global torch RNG (dropout) is reseeded from ``(seed, iteration, rank)`` before every iteration.
On the CPU with the same seed the final weights equal those of an uninterrupted run.

**Several GPUs.** Launched by ``torchrun`` (``WORLD_SIZE > 1``) the same call initialises the
process group (NCCL on CUDA, Gloo on CPU), converts BatchNorm to SyncBatchNorm (CUDA), wraps the
model in DistributedDataParallel and splits ``batch_size`` (the global batch) across ranks;
rank 0 alone writes files and validates.

**Defaults** depend on the backbone (:data:`DEFAULTS`): the paper's values for ResNet/HRNet
(Adam lr 5e-5, crop 416, batch 16, 50k iterations, 2k warm-up iterations, as the official
scripts); for the small CPU backbone, trained from scratch, a higher learning rate and a small
crop (see :data:`DEFAULTS` for the measured reasons).
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bestie_labels.errors import BestieError
from bestie_labels.fileio import atomic_path

from .checkpoint import load_checkpoint, save_checkpoint

#: Per-backbone defaults. ResNet/HRNet: the official BESTIE script values (Adam 5e-5, crop 416,
#: batch 16, 50k iterations, 2k warm-up, validation every 1k). tiny: trained from scratch on the
#: CPU, where the paper's 5e-5 barely moves in a few minutes. Measured on the default demo data
#: (180 train / 60 val images of 128x128, pseudo labels from GT points + GT class masks), batch 8,
#: crop 128, 600 iterations (about 4 CPU-minutes on one core): val mAP50 29.8 at lr 5e-5, 70.1 at
#: 2e-3, 72.6 at 5e-3; 2e-3 is the default (the margin to 5e-3 is within seed noise and the
#: lower rate is safer for the ablations).
#: ``recipe``: the augmentation of :mod:`bestie_train.augment` ("paper": the official loader's).
_PAPER = dict(lr=5e-5, crop=416, batch_size=16, iters=50000, warmup=2000, val_every=1000, recipe="paper")
DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": dict(lr=2e-3, crop=128, batch_size=8, iters=600, warmup=100, val_every=200, recipe="cpu"),
    "resnet50": dict(_PAPER),
    "resnet101": dict(_PAPER),
    "hrnet_w32": dict(_PAPER),
    "hrnet_w48": dict(_PAPER),
}
WARMUP_FACTOR = 0.001  # the learning rate starts at lr * 0.001 and rises linearly (official)
POLY_POWER = 0.9
LOSS_KEYS = ("total", "semantic", "center_pseudo", "center_refined", "offset_pseudo", "offset_refined")
# Options that change the training trajectory: a resume must use the same ones (``iters`` may
# grow: a run, finished or not, is extended; the poly schedule then decays to the new total).
TRAJECTORY_KEYS = ("backbone", "crop", "batch_size", "lr", "warmup", "seed", "iag", "refine",
                   "cluster", "sup", "sigma", "scale", "pretrained", "world_size", "num_classes", "recipe")


@dataclass
class FitOptions:
    """Every option of a run (recorded in the checkpoints); ``None`` means the backbone default."""

    backbone: str = "tiny"
    iters: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    crop: int | None = None
    lr: float | None = None
    warmup: int | None = None
    device: str = "cpu"
    seed: int = 0
    workers: int = 1
    iag: bool = True
    refine: bool = True
    cluster: bool = True
    sup: str = "cls"
    sigma: float = 6.0
    scale: tuple = (0.7, 1.3)
    val_every: int | None = None
    val_flip: bool = False
    log_every: int = 10
    ckpt_every: int | None = None
    pretrained: str | None = None
    points: str | None = None
    cues: str | None = None  # the cues store: run the transfer per training crop (official)
    recipe: str | None = None  # augmentation: "paper" or "cpu" (default: the backbone's)
    threads: int | None = None
    amp: bool = True
    world_size: int = 1
    num_classes: int = 0
    split: str = ""

    def resolve(self, n_train: int) -> "FitOptions":
        """Fill backbone defaults; ``epochs`` becomes ``iters``."""
        if self.backbone not in DEFAULTS:
            raise BestieError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(DEFAULTS)}")
        if self.sup not in ("cls", "point"):
            raise BestieError(f"sup must be 'cls' or 'point', got {self.sup!r}")
        d = DEFAULTS[self.backbone]
        for k in ("batch_size", "crop", "lr", "warmup", "recipe"):
            if getattr(self, k) is None:
                setattr(self, k, d[k])
        if self.batch_size % self.world_size:
            raise BestieError(f"batch size {self.batch_size} is not a multiple of the {self.world_size} processes")
        if self.iters is not None and self.epochs is not None:
            raise BestieError("give --iters or --epochs, not both")
        if self.epochs is not None:
            per_rank = self.batch_size // self.world_size
            steps = (n_train // self.world_size) // per_rank
            if steps < 1:
                raise BestieError(f"the training split has {n_train} images: too few for batch size {self.batch_size}")
            self.iters = int(self.epochs) * steps
        if self.iters is None:
            self.iters = d["iters"]
        if self.iters < 1:
            raise BestieError(f"iterations must be >= 1, got {self.iters}")
        if self.val_every is None:
            self.val_every = min(d["val_every"], self.iters)
        if self.ckpt_every is None:
            self.ckpt_every = self.val_every
        self.warmup = min(int(self.warmup), self.iters)
        self.scale = tuple(float(s) for s in self.scale)
        return self


def lr_factor(it: int, iters: int, warmup: int) -> float:
    """Learning-rate multiplier at iteration ``it`` (0-based): linear warm-up from
    :data:`WARMUP_FACTOR` over ``warmup`` iterations, times ``(1 - it / iters) ** 0.9``."""
    w = 1.0
    if it < warmup:
        a = it / warmup
        w = WARMUP_FACTOR * (1 - a) + a
    return w * max(0.0, 1.0 - it / iters) ** POLY_POWER


def device_is_cpu(device: str) -> bool:
    return str(device).split(":")[0] == "cpu"


def _iteration_seed(seed: int, it: int, rank: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(it), int(rank), 7]).generate_state(1)[0])


# ------------------------------------------------------------------------------------------
# metrics log and curves
# ------------------------------------------------------------------------------------------
def last_validation(out: str | os.PathLike, iteration: int) -> float | None:
    """The validation mAP50 of the weights at ``iteration`` (``last.pt``) in ``out/metrics.jsonl``,
    or None when that iteration was not validated."""
    rows = MetricsLog(Path(out) / "metrics.jsonl").read()
    vals = [r for r in rows if r.get("kind") == "val" and r.get("iter") == iteration]
    return vals[-1].get("mAP50") if vals else None


class MetricsLog:
    """``metrics.jsonl``: append one JSON line at a time (write, flush, fsync)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every complete, parseable line (a torn last line is skipped)."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate(self, iteration: int) -> None:
        """Drop every line logged after ``iteration`` (atomic rewrite)."""
        if not self.path.is_file():
            return  # nothing logged yet: create nothing (a run that fails early leaves no folder)
        rows = [r for r in self.read() if int(r.get("iter", 0)) <= iteration]
        with atomic_path(self.path) as tmp:
            with open(tmp, "w") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk: name the file (write() errors carry no file name)
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise BestieError(f"no space left on the device ({os.strerror(e.errno)}); last.pt holds the last "
                              "checkpoint and a rerun with --resume continues", self.path) from None


def plot_curves(rows: list[dict], path: Path) -> None:
    """Write ``curves.png``: loss terms (log scale) and validation mAP50 against iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val" and r.get("mAP50") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for k in LOSS_KEYS:
        pts = [(r["iter"], r[k]) for r in train if r.get(k) is not None and r[k] > 0]
        if pts:
            x, y = zip(*pts)
            ax1.plot(x, y, label=k, lw=1.2 if k == "total" else 0.9)
    ax1.set_yscale("log")
    ax1.set_xlabel("iteration")
    ax1.set_title("training losses (x lambda)")
    if train:
        ax1.legend(fontsize=7)
    if val:
        ax2.plot([r["iter"] for r in val], [r["mAP50"] for r in val], "o-", label="val mAP50")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("%")
    ax2.set_title("validation VOC mAP50")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.22)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------
# distributed helpers
# ------------------------------------------------------------------------------------------
@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def _init_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        here = True
    return _Dist(world=dist.get_world_size(), rank=dist.get_rank(),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")), initialised_here=here)


# ------------------------------------------------------------------------------------------
# refinement glue
# ------------------------------------------------------------------------------------------
def refined_targets(outputs: dict, batch: dict, opts: FitOptions) -> dict | None:
    """Self-refinement targets of a batch from the detached outputs (None when off)."""
    if not opts.refine:
        return None
    from .refine import refine_targets

    det = {k: v.detach().float() for k, v in outputs.items()}
    return refine_targets(det, batch, sup=opts.sup, cluster=opts.cluster, sigma=opts.sigma)


# ------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------
def _rng_state() -> dict:
    import random

    st = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [st[0], torch.from_numpy(st[1].astype(np.int64)), int(st[2]), int(st[3]), float(st[4])],
            "python": list(random.getstate()[1]) + [random.getstate()[0]]}


def _set_rng_state(st: dict) -> None:
    import random

    if not st:
        return
    torch.set_rng_state(st["torch"])
    if st.get("cuda") and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])
    n = st.get("numpy")
    if n:
        np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = st.get("python")
    if p:
        random.setstate((p[-1], tuple(p[:-1]), None))


def _one_line(e: BestieError) -> BestieError:
    """A BestieError re-raised by a DataLoader worker carries the worker's traceback in its
    message; keep the original one-line message (its last line)."""
    msg = str(e).strip()
    if "\n" not in msg:
        return e
    last = msg.splitlines()[-1]
    for prefix in ("bestie_labels.errors.BestieError: ", "BestieError: "):
        if last.startswith(prefix):
            last = last[len(prefix):]
    return BestieError(last)


def _check_resume(ckpt: dict, opts: dict, inputs: dict, class_names: list[str], path: Path) -> None:
    old = ckpt.get("options", {})
    diffs = [f"{k}: {old.get(k)!r} -> {opts.get(k)!r}" for k in TRAJECTORY_KEYS
             if json.dumps(old.get(k)) != json.dumps(opts.get(k))]
    if old.get("iters") is not None and int(opts["iters"]) < int(old["iters"]):
        diffs.append(f"iters: {old['iters']} -> {opts['iters']} (it may only grow)")
    if diffs:
        raise BestieError("was made with other options (" + ", ".join(diffs[:4])
                          + "); resume with the same options or use another --out", path)
    if ckpt.get("inputs") and ckpt["inputs"] != inputs:
        changed = [k for k in inputs if ckpt["inputs"].get(k) != inputs[k]]
        raise BestieError(f"was trained on other inputs ({', '.join(changed)} changed); use another --out", path)
    if list(ckpt.get("class_names", [])) != list(class_names):
        raise BestieError("was trained with other class names; use another --out", path)


def fit(dataset, pseudo: str | os.PathLike, wsss: str | os.PathLike, out: str | os.PathLike,
        val_dataset=None, resume: bool = False, force: bool = False, progress: bool = True,
        stop_after: int | None = None, **options) -> dict:
    """Train the instance network; see the module docstring for what ``out`` receives.

    Args:
        dataset: the training split (:class:`bestie_labels.datasets.base.Dataset`).
        pseudo, wsss: the transfer and WSSS stores of that split.
        out: run folder.
        val_dataset: split to validate on (VOC mAP50, best-checkpoint keeping), or None.
        resume: continue from ``out/last.pt`` if it exists (refused when the options differ);
            without it an existing ``last.pt`` is refused.
        force: start over when ``out`` holds a run; with ``resume``, only when that run was made
            with other options or inputs (what the pipeline passes).
        progress: show a tqdm bar with the loss terms.
        stop_after: stop (saving ``last.pt``) once this many iterations have run in this call,
            as if interrupted; for tests and time-boxed runs.
        **options: the fields of :class:`FitOptions` (backbone, iters, epochs, batch_size, crop,
            lr, warmup, device, seed, workers, iag, refine, cluster, sup, sigma, val_every,
            val_flip, log_every, ckpt_every, pretrained, points, cues, recipe, threads, amp).
            ``cues``: the cues store ``pseudo`` was made from, to run the transfer per training
            crop; ``recipe``: ``"paper"`` or ``"cpu"`` augmentation. ``threads``:
            torch CPU threads during the run (default 1 for the tiny backbone on the CPU, else
            torch's own); bitwise-exact resume needs the same thread count.

    Returns:
        ``{"rank", "iteration", "iters", "best_mAP50", "best_iteration", "last", "best",
        "seconds", "it_per_s"}`` (the best metric is known on rank 0 only).

    Raises:
        BestieError: bad options, missing or mismatching stores, a ``last.pt`` made with other
            options, a CUDA device requested without CUDA.
    """
    from tqdm import tqdm

    from .batches import EpochBatches, collate
    from .data import TrainData
    from .losses import bestie_loss
    from .model import build_model

    out = Path(out)
    opts = FitOptions(**options)
    if opts.device == "cuda" and not torch.cuda.is_available():
        raise BestieError("--device cuda but CUDA is not available")
    dist_ = _init_distributed(opts.device)
    try:
        opts.world_size = dist_.world
        opts.num_classes = dataset.num_classes
        opts.split = dataset.split
        opts.resolve(len(dataset))
        threads_before = torch.get_num_threads()
        if opts.threads is None and device_is_cpu(opts.device) and opts.backbone == "tiny":
            # The tiny network's tensors are small: a second thread gains little on an idle
            # machine and loses several-fold as soon as the cores are shared (measured 0.3 vs
            # 2.4 it/s on a loaded 2-core machine).
            opts.threads = 1
        if opts.threads is not None:
            torch.set_num_threads(int(opts.threads))
        if opts.device == "cuda":
            torch.cuda.set_device(dist_.local_rank)
            device = torch.device("cuda", dist_.local_rank)
            torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels
        else:
            device = torch.device("cpu")
        use_amp = opts.amp and device.type == "cuda"

        if val_dataset is not None:
            if len(val_dataset) == 0:
                raise BestieError(f"validation split '{val_dataset.split}' has no image; pass --val-split none",
                                  getattr(val_dataset, "root", None))
            try:  # fail now rather than at the first validation
                val_dataset.load_gt(val_dataset.records[0])
            except BestieError as e:
                raise BestieError(f"validation split '{val_dataset.split}' cannot be evaluated ({e.problem}); "
                                  "pass --val-split none", e.path) from None
        from bestie_labels.stages import PSEUDO, WSSS, open_input

        # stores made from this very split (same images, labels and files), as transfer checks
        with open_input(pseudo, PSEUDO, dataset, "--pseudo", same_data=True) as s1, \
                open_input(wsss, WSSS, dataset, "--wsss", same_data=True) as s2:
            inputs = {"dataset": dataset.fingerprint(), "pseudo": s1.fingerprint, "wsss": s2.fingerprint}
        train_data = TrainData(dataset, pseudo, wsss, crop=opts.crop, scale=opts.scale, seed=opts.seed,
                               sigma=opts.sigma, sup=opts.sup, points_dir=opts.points, cues=opts.cues,
                               recipe=opts.recipe)
        inputs["cues"] = ""  # always present: a run with and one without --cues differ
        if opts.cues:
            from bestie_labels.stages import CUES

            with open_input(opts.cues, CUES, dataset, "--cues", same_data=True) as s3:
                inputs["cues"] = s3.fingerprint
        opt_dict = json.loads(json.dumps(asdict(opts), default=str))

        last_path, best_path = out / "last.pt", out / "best.pt"
        log = MetricsLog(out / "metrics.jsonl")
        ckpt = None
        if last_path.exists():
            if not resume and not force:
                raise BestieError("the run folder already holds a checkpoint; pass --resume to continue "
                                  "it, --force to start over, or choose another --out", last_path)
            if resume:
                ckpt = load_checkpoint(last_path, num_classes=dataset.num_classes)
                old = ckpt.get("options", {})
                if old.get("iters") and old["iters"] < opts.iters and old.get("warmup") == min(opts.warmup, old["iters"]):
                    # an extended run keeps the warm-up it had (capped by its shorter length)
                    opts.warmup = opt_dict["warmup"] = old["warmup"]
                try:
                    _check_resume(ckpt, opt_dict, inputs, dataset.class_names, last_path)
                except BestieError:
                    if not force:
                        raise
                    ckpt = None  # --resume --force: the old run does not match; start over
            if ckpt is None:
                log.truncate(-1)
                best_path.unlink(missing_ok=True)

        torch.manual_seed(opts.seed)
        model = build_model(opts.backbone, dataset.num_classes,
                            pretrained=opts.pretrained if ckpt is None else None)
        model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda it: lr_factor(it, opts.iters, opts.warmup))
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        start, best_metric, best_iter = 0, None, None
        if ckpt is not None:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if use_amp and ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            start = int(ckpt["iteration"])
            best_metric = ckpt.get("best", {}).get("metric")
            best_iter = ckpt.get("best", {}).get("iteration")
            _set_rng_state(ckpt.get("rng", {}))
            loss_state = (ckpt.get("loss_sums"), int(ckpt.get("loss_count") or 0))
        else:
            loss_state = (None, 0)
        del ckpt
        if dist_.main:
            log.truncate(start)  # the run folder is made by the first log line or checkpoint

        net = model
        if dist_.world > 1:
            if device.type == "cuda":
                net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            net = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[dist_.local_rank] if device.type == "cuda" else None)
        model.train()

        per_rank = opts.batch_size // dist_.world
        sampler = EpochBatches(len(train_data), per_rank, seed=opts.seed, rank=dist_.rank,
                               world=dist_.world, start=start)
        n_workers = opts.workers if opts.workers > 1 else 0
        loader = torch.utils.data.DataLoader(
            train_data, batch_sampler=sampler, num_workers=n_workers, collate_fn=collate,
            pin_memory=device.type == "cuda", persistent_workers=False,
            # Its own generator: creating the iterator must not consume the global torch RNG.
            generator=torch.Generator())

        def state(it: int) -> dict:
            return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if use_amp else {},
                    "iteration": it, "rng": _rng_state(), "options": opt_dict, "inputs": inputs,
                    "class_names": list(dataset.class_names),
                    "best": {"metric": best_metric, "iteration": best_iter},
                    # the running loss average of the next metrics.jsonl line: a resumed run then
                    # logs the same curves as an uninterrupted one
                    "loss_sums": sums.detach().cpu().tolist(), "loss_count": n_sum}

        def validate(it: int) -> None:
            nonlocal best_metric, best_iter
            if dist_.main:
                from bestie_labels.evaluation.evaluate import evaluate_predictions

                from .predict import predict_dataset

                tv = time.perf_counter()
                model.eval()
                results = predict_dataset(model, val_dataset, device=device, flip=opts.val_flip,
                                          progress=False)
                model.train()
                m = evaluate_predictions(val_dataset, results, progress=False)
                row = {"kind": "val", "iter": it, "split": val_dataset.split,
                       **{k: m["voc"][k] for k in ("mAP25", "mAP50", "mAP70", "mAP75")},
                       "coco_AP": m["coco"]["AP"], "coco_AP50": m["coco"]["AP50"],
                       "num_predictions": m["num_predictions"],
                       "seconds": round(time.perf_counter() - tv, 2)}
                metric = m["voc"]["mAP50"]
                improved = metric is not None and (best_metric is None or metric > best_metric)
                row["best"] = bool(improved)
                log.append(row)
                if improved:
                    best_metric, best_iter = metric, it
                    save_checkpoint(best_path, state(it))
                if bar is not None:
                    bar.write(f"iter {it}: val mAP50 {metric if metric is not None else float('nan'):.2f}"
                              f" (best {best_metric if best_metric is not None else float('nan'):.2f}"
                              f" @ {best_iter})")
            dist_.barrier()

        def checkpoint(it: int) -> None:
            if dist_.main:
                save_checkpoint(last_path, state(it))
                plot_curves(log.read(), out / "curves.png")
            dist_.barrier()

        bar = tqdm(total=opts.iters, initial=start, desc="fit", unit="it", dynamic_ncols=True,
                   disable=(not progress) or (not dist_.main)) if dist_.main else None
        sums = torch.zeros(len(LOSS_KEYS), device=device)
        n_sum = loss_state[1]
        if loss_state[0] is not None and len(loss_state[0]) == len(LOSS_KEYS):
            sums = torch.tensor(loss_state[0], dtype=torch.float32, device=device)
        t_log = time.perf_counter()
        t0 = time.perf_counter()
        ran = 0
        it = start
        batches = iter(loader) if start < opts.iters else None

        def step(batch: dict, it: int, ran: int) -> tuple[int, int]:
            nonlocal sums, n_sum, t_log
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            torch.manual_seed(_iteration_seed(opts.seed, it, dist_.rank))
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                outputs = net(batch["image"])
            outputs = {k: v.float() for k, v in outputs.items()}
            refined = refined_targets(outputs, batch, opts)
            pseudo_t = {"center": batch["center"], "offset": batch["offset"], "weight": batch["weight"]}
            losses = bestie_loss(outputs, batch["semantic"], pseudo_t, refined, iag=opts.iag)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["total"]).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            it += 1
            ran += 1
            sums += torch.stack([losses[k].detach().float() for k in LOSS_KEYS])
            n_sum += 1
            if bar is not None:
                bar.update(1)

            if it % opts.log_every == 0 or it == opts.iters:
                vals = sums.clone()
                if dist_.world > 1:
                    torch.distributed.all_reduce(vals)
                    vals /= dist_.world
                vals = (vals / max(1, n_sum)).tolist()
                now = time.perf_counter()
                row = {"kind": "train", "iter": it, "epoch": (it - 1) // sampler.steps_per_epoch,
                       "lr": optimizer.param_groups[0]["lr"],
                       **{k: round(v, 6) for k, v in zip(LOSS_KEYS, vals)},
                       "it_per_s": round(n_sum / max(now - t_log, 1e-9), 3)}
                if not all(math.isfinite(v) for v in vals):
                    raise BestieError(f"the loss became {vals[0]} at iteration {it}; lower --lr", out)
                if dist_.main:
                    log.append(row)
                    if bar is not None:
                        bar.set_postfix({"loss": f"{vals[0]:.3f}", "sem": f"{vals[1]:.3f}",
                                         "ctr": f"{(vals[2] + vals[3]) / 2:.3f}",
                                         "off": f"{(vals[4] + vals[5]) / 2:.3f}"}, refresh=False)
                sums.zero_()
                n_sum = 0
                t_log = now

            if val_dataset is not None and (it % opts.val_every == 0 or it == opts.iters):
                validate(it)
            if it % opts.ckpt_every == 0 or it == opts.iters:
                checkpoint(it)
            return it, ran

        # Ctrl-C (single process): finish the iteration, write last.pt, then stop. A second
        # Ctrl-C stops at once (the last periodic checkpoint is kept).
        interrupted = {"flag": False}
        prev_handler = None
        if dist_.world == 1 and threading.current_thread() is threading.main_thread():
            def on_sigint(signum, frame):
                if interrupted["flag"]:
                    raise KeyboardInterrupt
                interrupted["flag"] = True

            prev_handler = signal.signal(signal.SIGINT, on_sigint)
        try:
            while it < opts.iters:
                try:
                    batch = next(batches)
                except BestieError as e:
                    raise _one_line(e) from None
                except Exception:
                    if not interrupted["flag"]:
                        raise
                    batch = None  # DataLoader workers got the Ctrl-C too
                if interrupted["flag"]:
                    checkpoint(it)
                    if bar is not None:
                        bar.close()
                    print(f"interrupted at iteration {it}: {last_path} written; rerun with --resume "
                          "to continue", file=sys.stderr)
                    raise KeyboardInterrupt
                it, ran = step(batch, it, ran)
                if it >= opts.iters or (stop_after is not None and ran >= stop_after):
                    if it < opts.iters and it % opts.ckpt_every != 0:
                        checkpoint(it)
                    break
        finally:
            if prev_handler is not None:
                signal.signal(signal.SIGINT, prev_handler)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0

        if dist_.main and it >= opts.iters:
            if val_dataset is None and (ran or not best_path.exists()):
                # No validation: best.pt is the final model (also of an extended run).
                best_metric, best_iter = None, it
                save_checkpoint(best_path, state(it))
            elif val_dataset is not None and not best_path.exists():
                save_checkpoint(best_path, state(it))
            if not (out / "curves.png").exists():
                plot_curves(log.read(), out / "curves.png")
        dist_.barrier()
        return {"rank": dist_.rank, "iteration": it, "iters": opts.iters, "best_mAP50": best_metric,
                "best_iteration": best_iter,
                "last": str(last_path), "best": str(best_path), "seconds": round(seconds, 2),
                "it_per_s": round(ran / seconds, 3) if ran and seconds > 0 else None}
    finally:
        if "threads_before" in locals():
            torch.set_num_threads(threads_before)
        if dist_.initialised_here:
            torch.distributed.destroy_process_group()
