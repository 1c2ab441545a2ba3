"""Public Python API of the label stages: load a classifier checkpoint, compute activation maps.

>>> import bestie_labels
>>> model = bestie_labels.load_classifier("PAM.pth")          # or a train-pam checkpoint
>>> maps = bestie_labels.activation_maps(model, image, labels)  # (C, H, W) float32 in [0, 1]

torch is imported when a function is called, so ``import bestie_labels`` stays cheap.
"""

from __future__ import annotations

import os


def load_classifier(path: str | os.PathLike, device: str = "cpu"):
    """The classifier of a checkpoint, ours (``train-pam``) or the official ``PAM.pth``, in eval
    mode on ``device``.

    The model has ``num_classes``, ``class_names`` (an official file holds none: the 20 VOC
    names for 20 classes, else ``class0``...), ``test_size`` (shorter side at inference) and
    ``checkpoint_meta`` (options, epoch, history, path). Raises ``BestieError`` naming the file
    when it is missing, unreadable or of another kind.
    """
    from .classifier.maps import load_classifier as _load

    model, meta = _load(path, device)
    model.class_names = list(meta["class_names"])
    model.checkpoint_meta = meta
    return model


def activation_maps(model, image, labels, device=None):
    """Normalised activation maps of one image as the official point extraction makes them.

    ``image (H, W, 3) uint8`` RGB is resized to the model's ``test_size`` (shorter side); it and
    its horizontal flip go through the network; each class map is ReLU'd, upsampled (bilinear)
    to ``H x W`` and divided by its maximum + 1e-5; the two views are averaged. ``labels (C,)
    bool``: other classes are zero. Returns ``(C, H, W) float32`` in [0, 1]. ``device``: None
    runs where the model is.
    """
    from .classifier.maps import activation_maps as _maps

    return _maps(model, image, labels, device=device)
