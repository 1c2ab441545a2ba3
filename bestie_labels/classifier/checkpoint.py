"""Classifier checkpoints (atomic write, validated read) and ImageNet weight loading.

A PAM checkpoint is a ``torch.save``'d dict::

    format: "bestie-pam", version: 1,
    model: state_dict, options: dict (backbone, num_classes, alpha, pam, input/crop size, lr,
    ...), class_names: list[str], epoch: int (completed epochs), optimizer: state_dict,
    rng: dict(torch, numpy, python), history: list of dict(epoch, loss, map)
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BestieError
from ..fileio import atomic_path

FORMAT = "bestie-pam"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, obj: dict[str, Any]) -> None:
    """``torch.save`` ``obj`` to a temporary file next to ``path`` and rename it into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else is a BestieError."""
    path = Path(path)
    if not path.is_file():
        raise BestieError("checkpoint not found", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for corrupt files
        raise BestieError(f"cannot read checkpoint ({type(e).__name__}: {e})", path) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BestieError("not a bestie PAM classifier checkpoint (made by `bestie-labels train-pam`)", path)
    if int(obj.get("version", -1)) > VERSION:
        raise BestieError(f"checkpoint version {obj.get('version')} is newer than this program ({VERSION})", path)
    for key in ("model", "options", "class_names"):
        if key not in obj:
            raise BestieError(f"checkpoint has no '{key}' entry", path)
    return obj


def rng_state() -> dict[str, Any]:
    """The state of torch's, numpy's and Python's global generators."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def load_pretrained(module: nn.Module, path: str | os.PathLike, verbose: bool = True):
    """Load torchvision-layout ImageNet weights from ``path`` into a classifier trunk.

    The backbones' loader (:func:`bestie_labels.backbones.weights.load_pretrained`) with
    nothing ignored on purpose, so that VGG's ``classifier.*`` and ResNet's ``fc.*`` are
    reported as unexpected: a wrong shape or a file matching nothing is a BestieError.
    Returns its :class:`~bestie_labels.backbones.weights.LoadReport`.
    """
    from ..backbones.weights import load_pretrained as _load

    return _load(module, path, ignore_prefixes=(), verbose=verbose)
