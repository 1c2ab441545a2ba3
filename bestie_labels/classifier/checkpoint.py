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


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file (a state dict, or a dict with 'state_dict' / 'model') as tensors."""
    path = Path(path)
    if not path.is_file():
        raise BestieError("pretrained weights file not found", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BestieError(f"cannot read pretrained weights ({type(e).__name__}: {e})", path) from None
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        raise BestieError("pretrained weights file holds no state dict of tensors", path)
    return {k.removeprefix("module."): v for k, v in obj.items() if torch.is_tensor(v)}


def load_pretrained(module: nn.Module, path: str | os.PathLike, log=print) -> dict[str, list[str]]:
    """Load torchvision-layout weights from ``path`` into ``module`` (a backbone trunk).

    Keys are matched by name; a matched key with another shape is a BestieError. Missing keys
    (in the module, not in the file) and unexpected keys (in the file, not in the module, e.g.
    VGG's ``classifier.*`` or ResNet's ``fc.*``) are printed through ``log``. A file of which no
    key matches is refused: it would silently train from scratch.

    Returns ``dict(loaded=[...], missing=[...], unexpected=[...])``.
    """
    src = read_state_dict(path)
    own = module.state_dict()
    loaded, bad = [], []
    for k, v in src.items():
        if k in own:
            if tuple(own[k].shape) != tuple(v.shape):
                bad.append(f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}")
            else:
                loaded.append(k)
    if bad:
        raise BestieError("pretrained weights have the wrong shapes: " + "; ".join(bad[:5])
                          + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""), path)
    if not loaded:
        raise BestieError(f"no key of the pretrained weights matches the backbone (file keys like "
                          f"{sorted(src)[:3]}, model keys like {sorted(own)[:3]})", path)
    missing = sorted(k for k in own if k not in src)
    unexpected = sorted(k for k in src if k not in own)
    module.load_state_dict({k: src[k] for k in loaded}, strict=False)
    log(f"pretrained {path}: loaded {len(loaded)} tensors")
    if missing:
        log(f"WARNING: {len(missing)} backbone keys missing from {path} (left randomly initialised): {missing}")
    if unexpected:
        log(f"WARNING: {len(unexpected)} keys of {path} not used by the backbone (ignored): {unexpected}")
    return {"loaded": loaded, "missing": missing, "unexpected": unexpected}
