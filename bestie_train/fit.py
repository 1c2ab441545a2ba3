"""The training loop: Adam + warm-up/poly schedule, AMP, DistributedDataParallel, exact resume.

One call of :func:`fit` trains the Panoptic-DeepLab network on pseudo labels (``pseudo.h5`` and
``wsss.h5`` of a split), with instance-aware guidance and online self-refinement (paper
Sec. 3.4-3.5), and writes into the run folder ``out``:

* ``last.pt``: the full training state (model, optimizer, scheduler, AMP scaler, iteration,
  RNG states, options, class names, best metric), written atomically every ``ckpt_every``
  iterations and at the end;
* ``best.pt``: the weights with the best validation VOC mAP50 so far (the final weights when
  there is no validation split);
* ``metrics.jsonl``: one JSON object per line (:mod:`.run_log`): a ``train`` row every
  ``log_every`` iterations and a ``val`` row after each validation; each line is written,
  flushed and fsynced on its own;
* ``curves.png``: the loss terms and the validation mAP50 against the iteration.

**Resume.** ``resume=True`` continues from ``last.pt`` when it exists (and starts afresh when it
does not); ``metrics.jsonl`` lines after the resumed iteration are dropped. The run is exactly
the uninterrupted one: batches depend only on ``(seed, iteration)`` (see
:class:`~bestie_train.batches.EpochBatches`), augmentation only on ``(seed, epoch, index)``, and
the global torch RNG (dropout) is reseeded from ``(seed, iteration, rank)`` before every
iteration. On the CPU with the same seed the final weights equal those of an uninterrupted run.

**Several GPUs.** Launched by ``torchrun`` (``WORLD_SIZE > 1``) the same call initialises the
process group (:mod:`.distributed`), converts BatchNorm to SyncBatchNorm (CUDA), wraps the model
in DistributedDataParallel and splits ``batch_size`` (the global batch) across ranks; rank 0
alone writes files and validates.

**Defaults** depend on the backbone (:data:`~bestie_train.fit_options.DEFAULTS`): the paper's
values for ResNet/HRNet, and for the small CPU backbone, trained from scratch, a higher learning
rate and a small crop. The pieces: options (:mod:`.fit_options`), schedule (:mod:`.schedule`),
metrics and curves (:mod:`.run_log`), run state, restore and save (:mod:`.run_state`); this
module holds the loop.
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch

from bestie_labels.core import interrupt
from bestie_labels.core.errors import BestieError, one_line
from bestie_labels.core.training import MetricsLog, check_device, device_is_cpu, progress_bar

from .checkpoint import save_checkpoint
from .distributed import init_distributed
from .fit_options import DEFAULTS, TRAJECTORY_KEYS, FitOptions
from .run_log import LOSS_KEYS, last_validation, plot_curves, val_row
from .run_state import (RunState, build_training, check_validation, checkpoint_state, make_loader, new_run,
                        open_training_data, resumed_checkpoint, select_device)
from .schedule import POLY_POWER, WARMUP_FACTOR, iteration_seed, lr_factor

__all__ = ["DEFAULTS", "LOSS_KEYS", "POLY_POWER", "TRAJECTORY_KEYS", "WARMUP_FACTOR", "FitOptions", "MetricsLog",
           "device_is_cpu", "fit", "last_validation", "lr_factor", "plot_curves", "refined_targets"]


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
        **options: the fields of :class:`~bestie_train.fit_options.FitOptions` (backbone, iters,
            epochs, batch_size, crop, lr, warmup, device, seed, workers, iag, refine, cluster,
            sup, sigma, val_every, val_flip, log_every, ckpt_every, pretrained, points, cues,
            recipe, threads, amp). ``cues``: the cues store ``pseudo`` was made from, to run the
            transfer per training crop; ``recipe``: ``"paper"`` or ``"cpu"`` augmentation.
            ``threads``: torch CPU threads during the run (default 1 for the tiny backbone on
            the CPU, else torch's own); bitwise-exact resume needs the same thread count.

    Returns:
        ``{"rank", "iteration", "iters", "best_mAP50", "best_iteration", "last", "best",
        "seconds", "it_per_s"}`` (the best metric is known on rank 0 only).

    Raises:
        BestieError: bad options, missing or mismatching stores, a ``last.pt`` made with other
            options, a CUDA device requested without CUDA.
    """
    opts = FitOptions(**options)
    check_device(opts.device)
    dist_ = init_distributed(opts.device)
    threads_before = torch.get_num_threads()
    try:
        opts.world_size, opts.num_classes, opts.split = dist_.world, dataset.num_classes, dataset.split
        opts.resolve(len(dataset))
        run = _prepare(dataset, pseudo, wsss, out, val_dataset, opts, dist_, resume, force, progress)
        t0 = time.perf_counter()
        batches = iter(run.loader) if run.it < opts.iters else None
        _train(run, batches, stop_after)
        if run.bar is not None:
            run.bar.close()
        seconds = time.perf_counter() - t0
        _finish(run)
        return {"rank": dist_.rank, "iteration": run.it, "iters": opts.iters, "best_mAP50": run.best_metric,
                "best_iteration": run.best_iter, "last": str(run.last_path), "best": str(run.best_path),
                "seconds": round(seconds, 2),
                "it_per_s": round(run.ran / seconds, 3) if run.ran and seconds > 0 else None}
    finally:
        torch.set_num_threads(threads_before)
        dist_.close()


def _prepare(dataset, pseudo, wsss, out, val_dataset, opts: FitOptions, dist_, resume: bool, force: bool,
             progress: bool) -> RunState:
    """Check the inputs, resume or start the run, build what trains and the batch loader."""
    device = select_device(opts, dist_)
    check_validation(val_dataset)
    train_data, inputs = open_training_data(dataset, pseudo, wsss, opts)
    run = new_run(dataset, out, opts, dist_, device, inputs, val_dataset)
    ckpt = resumed_checkpoint(run, resume, force, dataset.num_classes)
    build_training(run, ckpt)
    del ckpt
    run.loader = make_loader(run, train_data)
    run.bar = progress_bar(total=opts.iters, initial=run.it, desc="fit", unit="it",
                           disable=(not progress) or (not dist_.main)) if dist_.main else None
    run.t_log = time.perf_counter()
    return run


def _train(run: RunState, batches, stop_after: int | None) -> None:
    """Train until ``opts.iters`` (or ``stop_after`` iterations of this call, or a Ctrl-C)."""
    opts = run.opts
    # Ctrl-C (single process): finish the iteration, write last.pt, stop; a second one stops at once.
    with interrupt.finish_step(enabled=run.dist.world == 1) as poll:
        while run.it < opts.iters:
            batch = _next_batch(batches, poll)
            if poll.requested:
                _stop_interrupted(run)
            _train_step(run, batch)
            _after_step(run)
            if run.it >= opts.iters or (stop_after is not None and run.ran >= stop_after):
                if run.it < opts.iters and run.it % opts.ckpt_every != 0:
                    _save_last(run)
                break


def _next_batch(batches, poll) -> dict | None:
    try:
        return next(batches)
    except BestieError as e:
        raise one_line(e) from None
    except Exception:
        if not poll.requested:
            raise
        return None  # DataLoader workers got the Ctrl-C too


def _stop_interrupted(run: RunState) -> None:
    _save_last(run)
    if run.bar is not None:
        run.bar.close()
    print(f"interrupted at iteration {run.it}: {run.last_path} written; rerun with --resume "
          "to continue", file=sys.stderr)
    raise KeyboardInterrupt


def refined_targets(outputs: dict, batch: dict, opts: FitOptions) -> dict | None:
    """Self-refinement targets of a batch from the detached outputs (None when off)."""
    if not opts.refine:
        return None
    from .refine import refine_targets

    det = {k: v.detach().float() for k, v in outputs.items()}
    return refine_targets(det, batch, sup=opts.sup, cluster=opts.cluster, sigma=opts.sigma)


def _train_step(run: RunState, batch: dict) -> None:
    """One optimisation step on ``batch`` (the global torch RNG reseeded for the iteration)."""
    from .losses import bestie_loss

    opts, device = run.opts, run.device
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    torch.manual_seed(iteration_seed(opts.seed, run.it, run.dist.rank))
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=run.use_amp):
        outputs = run.net(batch["image"])
    outputs = {k: v.float() for k, v in outputs.items()}
    refined = refined_targets(outputs, batch, opts)
    pseudo_t = {"center": batch["center"], "offset": batch["offset"], "weight": batch["weight"]}
    losses = bestie_loss(outputs, batch["semantic"], pseudo_t, refined, iag=opts.iag)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(losses["total"]).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.it += 1
    run.ran += 1
    run.sums += torch.stack([losses[k].detach().float() for k in LOSS_KEYS])
    run.n_sum += 1
    if run.bar is not None:
        run.bar.update(1)


def _after_step(run: RunState) -> None:
    """The periodic work after an iteration: metrics line, validation, ``last.pt``."""
    opts, it = run.opts, run.it
    if it % opts.log_every == 0 or it == opts.iters:
        _log_train(run)
    if run.val_dataset is not None and (it % opts.val_every == 0 or it == opts.iters):
        _validate(run)
    if it % opts.ckpt_every == 0 or it == opts.iters:
        _save_last(run)


def _log_train(run: RunState) -> None:
    """Append the ``train`` row of the losses averaged since the last one (over every rank)."""
    vals = run.sums.clone()
    if run.dist.world > 1:
        torch.distributed.all_reduce(vals)
        vals /= run.dist.world
    vals = (vals / max(1, run.n_sum)).tolist()
    now = time.perf_counter()
    row = {"kind": "train", "iter": run.it, "epoch": (run.it - 1) // run.loader.batch_sampler.steps_per_epoch,
           "lr": run.optimizer.param_groups[0]["lr"],
           **{k: round(v, 6) for k, v in zip(LOSS_KEYS, vals)},
           "it_per_s": round(run.n_sum / max(now - run.t_log, 1e-9), 3)}
    if not all(math.isfinite(v) for v in vals):
        raise BestieError(f"the loss became {vals[0]} at iteration {run.it}; lower --lr", run.out)
    if run.dist.main:
        run.log.append(row)
        if run.bar is not None:
            run.bar.set_postfix({"loss": f"{vals[0]:.3f}", "sem": f"{vals[1]:.3f}",
                                 "ctr": f"{(vals[2] + vals[3]) / 2:.3f}",
                                 "off": f"{(vals[4] + vals[5]) / 2:.3f}"}, refresh=False)
    run.sums.zero_()
    run.n_sum = 0
    run.t_log = now


def _validate(run: RunState) -> None:
    """Rank 0: score the weights on the validation split; a better mAP50 rewrites ``best.pt``."""
    if run.dist.main:
        from bestie_labels.evaluation.evaluate import evaluate_predictions

        from .predict import predict_dataset

        tv = time.perf_counter()
        run.model.eval()
        results = predict_dataset(run.model, run.val_dataset, device=run.device, flip=run.opts.val_flip,
                                  progress=False)
        run.model.train()
        m = evaluate_predictions(run.val_dataset, results, progress=False)
        row = val_row(run.it, run.val_dataset.split, m, time.perf_counter() - tv)
        metric = m["voc"]["mAP50"]
        improved = metric is not None and (run.best_metric is None or metric > run.best_metric)
        row["best"] = bool(improved)
        run.log.append(row)
        if improved:
            run.best_metric, run.best_iter = metric, run.it
            save_checkpoint(run.best_path, checkpoint_state(run))
        if run.bar is not None:
            nan = float("nan")
            run.bar.write(f"iter {run.it}: val mAP50 {metric if metric is not None else nan:.2f}"
                          f" (best {run.best_metric if run.best_metric is not None else nan:.2f}"
                          f" @ {run.best_iter})")
    run.dist.barrier()


def _save_last(run: RunState) -> None:
    """Rank 0: write ``last.pt`` and redraw ``curves.png``."""
    if run.dist.main:
        save_checkpoint(run.last_path, checkpoint_state(run))
        plot_curves(run.log.read(), run.out / "curves.png")
    run.dist.barrier()


def _finish(run: RunState) -> None:
    """A finished run: ``best.pt`` (the final weights without validation) and ``curves.png``."""
    if run.dist.main and run.it >= run.opts.iters:
        if run.val_dataset is None and (run.ran or not run.best_path.exists()):
            # No validation: best.pt is the final model (also of an extended run).
            run.best_metric, run.best_iter = None, run.it
            save_checkpoint(run.best_path, checkpoint_state(run))
        elif run.val_dataset is not None and not run.best_path.exists():
            save_checkpoint(run.best_path, checkpoint_state(run))
        if not (run.out / "curves.png").exists():
            plot_curves(run.log.read(), run.out / "curves.png")
    run.dist.barrier()
