"""Classifier checkpoints (atomic write, validated read) and ImageNet weight loading.

A PAM checkpoint is a ``torch.save``'d dict of tensors, numbers, strings, lists and dicts only
(read with ``weights_only=True``: a file holding anything else is refused, never run)::

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
    from ..safe_load import load_torch_file

    return check_checkpoint(load_torch_file(path), path)


def check_checkpoint(obj: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``obj`` (a loaded file) if it is a valid checkpoint of ours, else a BestieError naming ``path``."""
    from ..safe_load import describe, kind_of

    if kind_of(obj) != FORMAT:
        raise BestieError(f"is {describe(obj)}: not a bestie PAM classifier checkpoint (made by "
                          "`bestie-labels train-pam`)", path)
    if int(obj.get("version", -1)) > VERSION:
        raise BestieError(f"checkpoint version {obj.get('version')} is newer than this program ({VERSION})", path)
    for key in ("model", "options", "class_names"):
        if key not in obj:
            raise BestieError(f"checkpoint has no '{key}' entry", path)
    return obj


def rng_state() -> dict[str, Any]:
    """The state of torch's, numpy's and Python's global generators, as tensors, numbers and
    lists only (so that the checkpoint loads with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": [str(name), torch.from_numpy(np.asarray(keys, np.int64)), int(pos), int(has_gauss),
                      float(cached)],
            "python": [int(version), list(internal), gauss_next]}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, np.int64).astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def load_pretrained(module: nn.Module, path: str | os.PathLike, verbose: bool = True):
    """Load torchvision-layout ImageNet weights from ``path`` into a classifier trunk.

    The backbones' loader (:func:`bestie_labels.backbones.weights.load_pretrained`) with
    nothing ignored on purpose, so that VGG's ``classifier.*`` and ResNet's ``fc.*`` are
    reported as unexpected: a wrong shape or a file matching nothing is a BestieError.
    Returns its :class:`~bestie_labels.backbones.weights.LoadReport`.
    """
    from ..backbones.weights import load_pretrained as _load

    return _load(module, path, ignore_prefixes=(), verbose=verbose)
