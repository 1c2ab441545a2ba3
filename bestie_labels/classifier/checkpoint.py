"""Classifier checkpoints (atomic write, validated read) and ImageNet weight loading.

A PAM checkpoint is a ``torch.save``'d dict of tensors, numbers, strings, lists and dicts only
(read with ``weights_only=True``: a file holding anything else is refused, never run)::

    format: "bestie-pam", version: 1,
    model: state_dict, options: dict (backbone, num_classes, alpha, pam, input/crop size, lr,
    ...), class_names: list[str], epoch: int (completed epochs), optimizer: state_dict,
    rng: dict(torch, cuda, numpy, python) (:func:`bestie_labels.core.training.rng_state`), history: list of dict(epoch, loss, map)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..core.errors import BestieError
from ..core.training import rng_state, save_state, set_rng_state  # noqa: F401  (train-irn imports them here)

FORMAT = "bestie-pam"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, obj: dict[str, Any]) -> None:
    """``torch.save`` ``obj`` to a temporary file next to ``path`` and rename it into place."""
    save_state(path, obj)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else is a BestieError."""
    path = Path(path)
    if not path.is_file():
        raise BestieError("checkpoint not found", path)
    from ..core.safe_load import load_torch_file

    return check_checkpoint(load_torch_file(path), path)


def check_checkpoint(obj: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``obj`` (a loaded file) if it is a valid checkpoint of ours, else a BestieError naming ``path``."""
    from ..core.safe_load import check_entries, describe, kind_of

    if kind_of(obj) != FORMAT:
        raise BestieError(f"is {describe(obj)}: not a bestie PAM classifier checkpoint (made by "
                          "`bestie-labels train-pam`)", path)
    return check_entries(obj, VERSION, ("model", "options", "class_names"), path)


def load_pretrained(module: nn.Module, path: str | os.PathLike, verbose: bool = True):
    """Load torchvision-layout ImageNet weights from ``path`` into a classifier trunk.

    The backbones' loader (:func:`bestie_labels.backbones.weights.load_pretrained`) with
    nothing ignored on purpose, so that VGG's ``classifier.*`` and ResNet's ``fc.*`` are
    reported as unexpected: a wrong shape or a file matching nothing is a BestieError.
    Returns its :class:`~bestie_labels.backbones.weights.LoadReport`.
    """
    from ..backbones.weights import load_pretrained as _load

    return _load(module, path, ignore_prefixes=(), verbose=verbose)
