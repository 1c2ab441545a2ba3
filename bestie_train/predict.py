"""Inference: instance masks of a dataset split from a trained checkpoint.

Each image is normalised, padded at the bottom and right to a multiple of 32 (Panoptic-DeepLab
runs at the full resolution, no resizing), passed through the network, and the outputs are
cropped back to the original ``H x W``. With ``flip`` the horizontally flipped image is run
too and the outputs averaged: semantic class probabilities and center heatmaps flipped back,
offsets flipped back with ``dx`` negated. :func:`bestie_train.postprocess.predict_instances`
then finds the centers (NMS), groups pixels to them (Eq. 1) and scores each mask
(center value x mean class probability).

Outputs (written atomically):

* ``fmt="results"``: a COCO results list ``[{image_id, category_id, segmentation, score}]``
  (``image_id`` = the record's COCO id, ``category_id`` = the dataset's id of the class (a COCO
  dataset's own, 1..C for VOC and folder data), compressed RLE with
  ``counts`` as str), what ``bestie-labels evaluate`` and pycocotools' ``loadRes`` read;
* ``fmt="coco"``: a COCO instances JSON (``images``, ``annotations`` with ``score``, ``bbox``,
  ``area``, ``iscrowd`` 0, ``categories``), e.g. to train Mask R-CNN on the refined labels.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from bestie_labels.core.errors import BestieError
from bestie_labels.core.fileio import write_json
from bestie_labels.core.torch_threads import threads_for

from .data import normalize_image

STRIDE = 32


@torch.no_grad()
def network_outputs(model: torch.nn.Module, image: np.ndarray, device: str | torch.device = "cpu",
                    flip: bool = False) -> dict[str, torch.Tensor]:
    """Run the network on one full image.

    Args:
        model: the trainer network in eval mode.
        image: ``(H, W, 3) uint8`` RGB.
        device: where to run.
        flip: average with the horizontally flipped image.

    Returns:
        ``semantic (C+1, H, W)`` logits (with ``flip``: log of the averaged probabilities, so a
        softmax gives the averaged probabilities), ``center (C, H, W)``, ``offset (2, H, W)``
        (dy, dx), float32 on ``device``.
    """
    h, w = image.shape[:2]
    x = normalize_image(image)[None].to(device)
    ph, pw = (-h) % STRIDE, (-w) % STRIDE
    # Zero after normalisation is the mean colour.
    x = F.pad(x, (0, pw, 0, ph))
    if flip:
        x = torch.cat([x, x.flip(-1)], 0)
    out = model(x)
    sem, ctr, off = (out[k].float() for k in ("semantic", "center", "offset"))
    if flip:
        # The flipped copy was padded on its left; flip back first, then crop.
        prob = (sem[0].softmax(0) + sem[1].flip(-1).softmax(0)) / 2
        sem0 = prob.clamp_min(1e-12).log()
        ctr0 = (ctr[0] + ctr[1].flip(-1)) / 2
        off1 = off[1].flip(-1)
        off1 = torch.stack([off1[0], -off1[1]])
        off0 = (off[0] + off1) / 2
    else:
        sem0, ctr0, off0 = sem[0], ctr[0], off[0]
    return {"semantic": sem0[:, :h, :w].contiguous(), "center": ctr0[:, :h, :w].contiguous(),
            "offset": off0[:, :h, :w].contiguous()}


def iter_predictions(model: torch.nn.Module, dataset, device: str | torch.device = "cpu",
                     flip: bool = False, progress: bool = True, **post) -> Iterator[dict]:
    """Per image: ``{"image_id": coco id, "masks": (N, H, W) bool, "classes": (N,) int64,
    "scores": (N,) float32}``. ``post`` goes to :func:`bestie_train.postprocess.predict_instances`."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    try:
        for rec in tqdm(dataset.records, desc="predict", unit="img", disable=not progress, leave=False):
            r = image_instances(model, dataset.load_image(rec), device=device, flip=flip, **post)
            yield {"image_id": int(rec.coco_id), **r}
    finally:
        model.train(was_training)


def image_instances(model: torch.nn.Module, image: np.ndarray, device: str | torch.device = "cpu",
                    flip: bool = False, **post) -> dict[str, np.ndarray]:
    """The instances ``model`` (in eval mode) finds in one ``(H, W, 3) uint8`` RGB image:
    ``masks (N, H, W) bool``, ``classes (N,) int64`` (0-based), ``scores (N,) float32``.
    ``post`` goes to :func:`bestie_train.postprocess.predict_instances`."""
    from .postprocess import predict_instances

    h, w = image.shape[:2]
    r = predict_instances(network_outputs(model, image, device=device, flip=flip), **post)
    return {"masks": np.asarray(_np(r["masks"]), bool).reshape(-1, h, w),
            "classes": np.asarray(_np(r["classes"]), np.int64).reshape(-1),
            "scores": np.asarray(_np(r["scores"]), np.float32).reshape(-1)}


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def results_list(preds, category_ids) -> list[dict]:
    """COCO results entries from :func:`iter_predictions` items (empty masks dropped);
    ``category_ids`` ``(C,)`` gives each class's category id (the dataset's
    :meth:`~bestie_labels.datasets.base.Dataset.category_ids`)."""
    from bestie_labels.core.rle import encode

    out = []
    for p in preds:
        n, h, w = p["masks"].shape
        keep = p["masks"].reshape(n, h * w).any(1)
        if not keep.any():
            continue
        rles = encode(p["masks"][keep])
        for rle, c, s in zip(rles, p["classes"][keep], p["scores"][keep]):
            out.append({"image_id": p["image_id"], "category_id": int(category_ids[int(c)]), "segmentation": rle,
                        "score": float(s)})
    return out


def predict_dataset(model: torch.nn.Module, dataset, device: str | torch.device = "cpu",
                    flip: bool = False, progress: bool = True, **post) -> list[dict]:
    """The COCO results list of ``model`` on every image of ``dataset`` (in memory)."""
    return results_list(iter_predictions(model, dataset, device=device, flip=flip, progress=progress, **post),
                        dataset.category_ids())


def _device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise BestieError("--device cuda but CUDA is not available")
    return torch.device(device)


def load_model(checkpoint: str | os.PathLike, dataset, device: str = "cpu") -> torch.nn.Module:
    """The network of ``checkpoint``, checked against ``dataset``'s classes, in eval mode."""
    from .checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint, num_classes=dataset.num_classes, class_names=dataset.class_names)
    return model_from_checkpoint(ckpt, _device(device))


def _with_figures(preds, dataset, vis_dir: str | os.PathLike, num: int):
    """Pass ``preds`` through, writing ``vis_dir/<id>.png`` (image | GT | predictions) for
    ``num`` images spread over the split."""
    from bestie_labels.viz.drawing import prediction_panels, write_rgb_png

    n = len(dataset)
    chosen = set(np.linspace(0, n - 1, min(num, n)).round().astype(int).tolist()) if n else set()
    for i, p in enumerate(preds):
        if i in chosen:
            rec = dataset.records[i]
            try:
                gt = dataset.load_gt(rec).instance_map()
            except BestieError:
                gt = None  # a split without GT (train_aug, folder datasets)
            panel = prediction_panels(dataset.load_image(rec), gt, p["masks"], p["classes"], p["scores"],
                                      dataset.class_names)
            write_rgb_png(Path(vis_dir) / f"{rec.image_id}.png", panel)
        yield p


def resolve_flip(flip: bool | None, model: torch.nn.Module) -> bool:
    """``flip`` when given, else the default of the model's supervision: flip test-time
    augmentation for point labels (as the official point-label inference), none for image-level."""
    return bool(flip) if flip is not None else getattr(model, "sup", "cls") == "point"


@contextlib.contextmanager
def _predictions(checkpoint, dataset, device: str, flip: bool | None, progress: bool, vis_dir, num_vis: int):
    """The predictions of ``checkpoint`` on ``dataset`` (an iterator, as
    :func:`iter_predictions`), with the figures of ``vis_dir`` drawn as they pass."""
    model = load_model(checkpoint, dataset, device)
    flip = resolve_flip(flip, model)
    with threads_for(getattr(model, "backbone_name", None), _device(device)):
        preds = iter_predictions(model, dataset, device=_device(device), flip=flip, progress=progress)
        yield preds if vis_dir is None else _with_figures(preds, dataset, vis_dir, num_vis)


def predict(checkpoint: str | os.PathLike, dataset, out: str | os.PathLike, flip: bool | None = None,
            fmt: str = "results", device: str = "cpu", progress: bool = True,
            vis_dir: str | os.PathLike | None = None, num_vis: int = 8) -> dict:
    """Predict instance masks for a split and write them to ``out``.

    Args:
        checkpoint: ``best.pt`` / ``last.pt`` of a run.
        dataset: the split to predict.
        out: JSON file to write (atomically).
        flip: horizontal-flip test-time augmentation; None: on for a point-supervised
            checkpoint, off otherwise (:func:`resolve_flip`).
        fmt: ``"results"`` (COCO results list) or ``"coco"`` (COCO instances JSON).
        device: ``"cpu"`` or ``"cuda"``.
        vis_dir: also write ``num_vis`` PNGs (image | GT instances | predictions) there.

    Returns:
        ``{"images": n, "instances": m, "out": path}``.

    Raises:
        BestieError: unreadable checkpoint, a checkpoint for another number of classes,
            unreadable images.
    """
    if fmt not in ("results", "coco"):
        raise BestieError(f"unknown format {fmt!r} (results or coco)")
    with _predictions(checkpoint, dataset, device, flip, progress, vis_dir, num_vis) as preds:
        if fmt == "results":
            js = results_list(preds, dataset.category_ids())
            n = len(js)
        else:
            from bestie_labels.formats.coco_json import results_to_coco_instances

            js = results_to_coco_instances(dataset, preds)
            n = len(js["annotations"])
    write_json(out, js)
    return {"images": len(dataset), "instances": n, "out": str(Path(out))}


def evaluate(checkpoint: str | os.PathLike, dataset, out: str | os.PathLike | None = None,
             flip: bool | None = None, device: str = "cpu", progress: bool = True,
             vis_dir: str | os.PathLike | None = None, num_vis: int = 8,
             html_dir: str | os.PathLike | None = None, metrics_log: str | os.PathLike | None = None,
             workers: int = 1, force: bool = False) -> dict:
    """Predict a split with ``checkpoint`` and evaluate it against the GT.

    ``vis_dir``: also write ``num_vis`` figures there, and ``flip`` as :func:`predict`.
    ``html_dir``: also write the HTML report there (every image's predictions against its GT,
    the per-class AP table and, from ``metrics_log`` (a run's ``metrics.jsonl``), the training
    curves; :mod:`bestie_labels.viz.html.predictions`), drawn by ``workers`` processes,
    replacing files it did not write only with ``force``.

    Returns the metrics dict of
    :func:`bestie_labels.evaluation.evaluate.evaluate_predictions` (also written to ``out`` as
    JSON when given, the same JSON as ``bestie-labels evaluate``).
    """
    from bestie_labels.evaluation.evaluate import evaluate_predictions

    with _predictions(checkpoint, dataset, device, flip, progress, vis_dir, num_vis) as preds:
        results = results_list(preds, dataset.category_ids())
    metrics = evaluate_predictions(dataset, results, progress=progress)
    if out:
        write_json(out, metrics, indent=2)
    if html_dir is not None:
        from bestie_labels.viz.html.predictions import write_predictions_report

        metrics["html"] = write_predictions_report(dataset, results, metrics, html_dir,
                                                   curves_png=curves_png(metrics_log), workers=workers,
                                                   force=force, progress=progress)["index"]
    return metrics


def curves_png(metrics_log: str | os.PathLike | None) -> bytes | None:
    """The training curves of a run's ``metrics.jsonl`` as PNG bytes (None: no log, or no rows)."""
    import tempfile

    from bestie_labels.core.training import MetricsLog

    from .run_log import plot_curves

    if metrics_log is None or not Path(metrics_log).is_file():
        return None
    rows = MetricsLog(Path(metrics_log)).read()
    if not rows:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        plot_curves(rows, Path(tmp) / "curves.png")
        return (Path(tmp) / "curves.png").read_bytes()
