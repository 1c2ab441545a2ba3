"""Public Python API of the trainer: load any network checkpoint, run it on one image.

>>> import bestie_train
>>> model = bestie_train.load_model("BESTIE_HRNet48_point_label.pt")   # or run/best.pt
>>> out = bestie_train.infer(model, image)   # image: (H, W, 3) uint8 RGB
>>> out["semantic"].shape, out["center"].shape, out["offset"].shape
((C+1, H, W), (C, H, W), (2, H, W))
>>> inst = bestie_train.predict_image(model, image)   # instances, as `predict` finds them
>>> inst["masks"].shape, inst["classes"], inst["scores"], inst["class_names"]
((N, H, W), (N,) int64, (N,) float32, [names of the N classes])
>>> bestie_train.predict_image(model, image, dataset=ds)["category_ids"]   # the dataset's own ids
"""

from __future__ import annotations

import os

import numpy as np


def load_model(path: str | os.PathLike, device: str = "cpu"):
    """The network of a checkpoint, ours (``best.pt`` / ``last.pt`` of ``fit``) or official
    (``BESTIE_HRNet48_image_label.pt`` / ``_point_label.pt``), in eval mode on ``device``.

    The model has ``num_classes``, ``backbone_name`` and ``class_names`` (an official file holds
    none: the 20 VOC names for 20 classes, else ``class0``...). Raises ``BestieError`` naming
    the file when it is missing, unreadable or of another kind.
    """
    import torch

    from .checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, torch.device(device))
    model.class_names = list(ckpt["class_names"])
    return model


def infer(model, image: np.ndarray, flip: bool = False) -> dict[str, np.ndarray]:
    """Run ``model`` (from :func:`load_model`) on one image at its full resolution.

    Args:
        model: the trainer network, in eval mode.
        image: ``(H, W, 3) uint8`` RGB.
        flip: average with the horizontally flipped image (test-time augmentation).

    Returns:
        ``semantic (C+1, H, W)`` logits (channel 0 = background), ``center (C, H, W)`` heatmaps,
        ``offset (2, H, W)`` (dy, dx) in pixels; float32 numpy arrays at the image's size.
    """
    from .predict import network_outputs

    _check_image(image)
    image = np.asarray(image)
    device = next(model.parameters()).device
    out = network_outputs(model, image, device=device, flip=flip)
    return {k: v.float().cpu().numpy() for k, v in out.items()}


def predict_image(model, image: np.ndarray, flip: bool | None = None, dataset=None, **post) -> dict:
    """The instances ``model`` (from :func:`load_model`) finds in one image, as
    ``bestie-train predict`` finds them in a split.

    Args:
        model: the trainer network.
        image: ``(H, W, 3) uint8`` RGB.
        flip: flip test-time augmentation; None follows the checkpoint's supervision (point
            labels: on, as the official inference).
        dataset: the :class:`~bestie_labels.datasets.Dataset` the model was trained for; its
            category ids are then given too (its class names must be the model's, in order).
        post: options of :func:`bestie_train.postprocess.predict_instances` (thresholds, top-k).

    Returns:
        ``masks (N, H, W) bool``, ``classes (N,) int64`` (0-based), ``scores (N,) float32`` and
        ``class_names`` (the N instances' class names); with ``dataset`` also ``category_ids
        (N,) int64``, the dataset's own ids (COCO: the JSON's; VOC / folder: 1..C).
    """
    from .predict import image_instances, resolve_flip

    _check_image(image)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        out = image_instances(model, np.asarray(image), device=device, flip=resolve_flip(flip, model), **post)
    finally:
        model.train(was_training)
    names = getattr(model, "class_names", None)
    out["class_names"] = [names[int(c)] if names else f"class{int(c)}" for c in out["classes"]]
    if dataset is not None:
        if names is not None and list(names) != list(dataset.class_names):
            from bestie_labels.core.errors import BestieError

            raise BestieError(f"the model's classes ({', '.join(names[:4])}, ...) are not the dataset's "
                              f"({', '.join(dataset.class_names[:4])}, ...) in the same order", dataset.root)
        out["category_ids"] = dataset.category_map().to_ids(out["classes"])
    return out


def _check_image(image) -> None:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
