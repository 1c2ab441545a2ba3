"""The state of a ``fit`` run (:class:`RunState`) and how it is prepared, restored and saved.

:func:`prepare` checks the inputs, decides whether ``last.pt`` is resumed
(:func:`bestie_labels.core.training.previous_run`), builds the network, optimizer, scheduler and AMP
scaler, restores them from the checkpoint, and makes the batch loader. :func:`checkpoint_state`
is what ``last.pt`` / ``best.pt`` hold (layout in :mod:`bestie_train.checkpoint`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bestie_labels.core.errors import BestieError
from bestie_labels.core.training import MetricsLog, device_is_cpu, previous_run, rng_state, set_rng_state

from .checkpoint import load_checkpoint
from .distributed import Dist, wrap_model
from .fit_options import TRAJECTORY_KEYS, FitOptions
from .run_log import LOSS_KEYS
from .schedule import lr_factor


@dataclass
class RunState:
    """Everything the loop reads and updates: the run's setup, its training objects, and the
    counters a checkpoint records (``it``: completed iterations; ``sums`` / ``n_sum``: the running
    loss average of the next ``metrics.jsonl`` line)."""

    opts: FitOptions
    out: Path
    dist: Dist
    device: torch.device
    inputs: dict
    opt_dict: dict
    class_names: list
    log: MetricsLog
    val_dataset: Any = None
    model: Any = None
    net: Any = None
    optimizer: Any = None
    scheduler: Any = None
    scaler: Any = None
    loader: Any = None
    bar: Any = None
    it: int = 0
    ran: int = 0
    best_metric: float | None = None
    best_iter: int | None = None
    sums: Any = None
    n_sum: int = 0
    t_log: float = 0.0

    @property
    def use_amp(self) -> bool:
        return self.opts.amp and self.device.type == "cuda"

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"


def checkpoint_state(run: RunState) -> dict:
    """The training state at iteration ``run.it`` (see :mod:`bestie_train.checkpoint`)."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict() if run.use_amp else {},
            "iteration": run.it, "rng": rng_state(), "options": run.opt_dict, "inputs": run.inputs,
            "class_names": list(run.class_names),
            "best": {"metric": run.best_metric, "iteration": run.best_iter},
            # the running loss average of the next metrics.jsonl line: a resumed run then
            # logs the same curves as an uninterrupted one
            "loss_sums": run.sums.detach().cpu().tolist(), "loss_count": run.n_sum}


def select_device(opts: FitOptions, dist_: Dist) -> torch.device:
    """The run's device (this process's GPU under torchrun) and torch's CPU thread count."""
    if opts.threads is None and device_is_cpu(opts.device) and opts.backbone == "tiny":
        # The tiny network's tensors are small: a second thread gains little on an idle
        # machine and loses several-fold as soon as the cores are shared (measured 0.3 vs
        # 2.4 it/s on a loaded 2-core machine).
        opts.threads = 1
    if opts.threads is not None:
        torch.set_num_threads(int(opts.threads))
    if opts.device == "cuda":
        torch.cuda.set_device(dist_.local_rank)
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels
        return torch.device("cuda", dist_.local_rank)
    return torch.device("cpu")


def check_validation(val_dataset) -> None:
    """Refuse a validation split that is empty or cannot be evaluated, before training."""
    if val_dataset is None:
        return
    if len(val_dataset) == 0:
        raise BestieError(f"validation split '{val_dataset.split}' has no image; pass --val-split none",
                          getattr(val_dataset, "root", None))
    try:  # fail now rather than at the first validation
        val_dataset.load_gt(val_dataset.records[0])
    except BestieError as e:
        raise BestieError(f"validation split '{val_dataset.split}' cannot be evaluated ({e.problem}); "
                          "pass --val-split none", e.path) from None


def open_training_data(dataset, pseudo, wsss, opts: FitOptions):
    """The training crops (:class:`~bestie_train.data.TrainData`) and the fingerprints of the
    inputs: stores made from this very split (same images, labels and files), as transfer checks."""
    from bestie_labels.store.inputs import CUES, PSEUDO, WSSS, open_input

    from .data import TrainData

    with open_input(pseudo, PSEUDO, dataset, "--pseudo", same_data=True) as s1, \
            open_input(wsss, WSSS, dataset, "--wsss", same_data=True) as s2:
        inputs = {"dataset": dataset.fingerprint(), "pseudo": s1.fingerprint, "wsss": s2.fingerprint}
    train_data = TrainData(dataset, pseudo, wsss, crop=opts.crop, scale=opts.scale, seed=opts.seed,
                           sigma=opts.sigma, sup=opts.sup, points_dir=opts.points, cues=opts.cues,
                           recipe=opts.recipe, point_offsets=opts.point_offsets)
    inputs["cues"] = ""  # always present: a run with and one without --cues differ
    if opts.cues:
        with open_input(opts.cues, CUES, dataset, "--cues", same_data=True) as s3:
            inputs["cues"] = s3.fingerprint
    return train_data, inputs


def check_resume(ckpt: dict, opts: dict, inputs: dict, class_names: list[str], path: Path) -> None:
    """Refuse to resume a run made with other trajectory options, inputs or class names."""
    # a run from before --point-offsets existed regressed offsets to the point
    old = {"point_offsets": "point", **ckpt.get("options", {})}
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


def resumed_checkpoint(run: RunState, resume: bool, force: bool, num_classes: int) -> dict | None:
    """``last.pt`` when the run continues it, else None; starting over a run folder drops its
    metrics and ``best.pt``."""
    opts, last = run.opts, run.last_path

    def check(ckpt: dict) -> None:
        old = ckpt.get("options", {})
        if old.get("iters") and old["iters"] < opts.iters and old.get("warmup") == min(opts.warmup, old["iters"]):
            # an extended run keeps the warm-up it had (capped by its shorter length)
            opts.warmup = run.opt_dict["warmup"] = old["warmup"]
        check_resume(ckpt, run.opt_dict, run.inputs, run.class_names, last)

    existed = last.exists()
    if not existed and (resume or not force):
        # with --resume, --force starts over a run that does not match (the pipeline's way), but
        # replaces no file that is not a run's, as a last.pt that is not a checkpoint is refused
        _refuse_foreign_run_files(run.out)
    ckpt = previous_run(last, resume, force, lambda p: load_checkpoint(p, num_classes=num_classes), check,
                        exists="the run folder already holds a checkpoint; pass --resume to continue it, "
                               "--force to start over, or choose another --out")
    if existed and ckpt is None:
        run.log.truncate(-1)
        run.best_path.unlink(missing_ok=True)
    return ckpt


def _refuse_foreign_run_files(out: Path) -> None:
    """A folder without ``last.pt`` holds no run of ``fit``: its ``curves.png`` or ``best.pt``
    were written by something else and are not replaced; so is a ``metrics.jsonl`` unless all
    its rows are ``fit`` rows (a run killed before its first ``last.pt`` left it)."""
    for name in ("metrics.jsonl", "curves.png", "best.pt"):
        path = Path(out) / name
        if name == "metrics.jsonl" and _fit_rows_only(path):
            continue
        if path.exists():
            raise BestieError("exists and was not written by `bestie-train fit` (the folder holds no last.pt); "
                              "pass --force to replace it, or choose another --out", Path(out) / name)


def _fit_rows_only(path: Path) -> bool:
    rows = MetricsLog(path).read()
    return bool(rows) and all(isinstance(r, dict) and (r.get("kind") == "val" and "mAP50" in r or r.get("kind") == "train"
                                                      and all(k in r for k in LOSS_KEYS)) for r in rows)


def build_training(run: RunState, ckpt: dict | None) -> None:
    """Network, optimizer, poly scheduler and AMP scaler of ``run``, restored from ``ckpt``."""
    from .model import build_model

    opts = run.opts
    torch.manual_seed(opts.seed)
    run.model = build_model(opts.backbone, len(run.class_names), pretrained=opts.pretrained if ckpt is None else None)
    run.model.to(run.device)
    run.optimizer = torch.optim.Adam(run.model.parameters(), lr=opts.lr, weight_decay=0.0)
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(
        run.optimizer, lambda it: lr_factor(it, opts.iters, opts.warmup))
    run.scaler = torch.amp.GradScaler("cuda", enabled=run.use_amp)
    run.sums = torch.zeros(len(LOSS_KEYS), device=run.device)
    if ckpt is not None:
        restore(run, ckpt)
    if run.dist.main:
        run.log.truncate(run.it)  # the run folder is made by the first log line or checkpoint
    run.net = wrap_model(run.model, run.dist, run.device)
    run.model.train()


def restore(run: RunState, ckpt: dict) -> None:
    """Continue from ``ckpt``: weights, optimizer, schedule, scaler, counters, RNG states."""
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    if run.use_amp and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    run.it = int(ckpt["iteration"])
    run.best_metric = ckpt.get("best", {}).get("metric")
    run.best_iter = ckpt.get("best", {}).get("iteration")
    set_rng_state(ckpt.get("rng", {}))
    sums, run.n_sum = ckpt.get("loss_sums"), int(ckpt.get("loss_count") or 0)
    if sums is not None and len(sums) == len(LOSS_KEYS):
        run.sums = torch.tensor(sums, dtype=torch.float32, device=run.device)


def make_loader(run: RunState, train_data) -> Any:
    """The batch loader from iteration ``run.it`` on (batches depend on ``(seed, iteration)``)."""
    from .batches import EpochBatches, collate

    opts, dist_ = run.opts, run.dist
    sampler = EpochBatches(len(train_data), opts.batch_size // dist_.world, seed=opts.seed, rank=dist_.rank,
                           world=dist_.world, start=run.it)
    return torch.utils.data.DataLoader(
        train_data, batch_sampler=sampler, num_workers=opts.workers if opts.workers > 1 else 0,
        collate_fn=collate, pin_memory=run.device.type == "cuda", persistent_workers=False,
        # Its own generator: creating the iterator must not consume the global torch RNG.
        generator=torch.Generator())


def new_run(dataset, out: str | os.PathLike, opts: FitOptions, dist_: Dist, device: torch.device,
            inputs: dict, val_dataset) -> RunState:
    """A :class:`RunState` before anything is built (options recorded as a JSON-like dict)."""
    return RunState(opts=opts, out=Path(out), dist=dist_, device=device, inputs=inputs,
                    opt_dict=json.loads(json.dumps(asdict(opts), default=str)),
                    class_names=list(dataset.class_names), log=MetricsLog(Path(out) / "metrics.jsonl"),
                    val_dataset=val_dataset)
