"""Training checkpoints: atomic save, validated load, model rebuild.

A checkpoint is a ``torch.save`` dict readable with ``weights_only=True`` (tensors, numbers,
strings, lists and dicts only)::

    format        1
    kind          "bestie-train"
    model         state dict of the network (unwrapped from DistributedDataParallel)
    optimizer     Adam state dict            scheduler  LambdaLR state dict
    scaler        GradScaler state dict (CUDA AMP) or {}
    iteration     completed training iterations
    rng           {"torch": ByteTensor, "cuda": [ByteTensor...], "numpy": [...], "python": [...]}
    options       the fit options (JSON-like dict: backbone, crop, lr, iters, seed, ...)
    class_names   list of the dataset's class names (their count fixes the heads)
    best          {"metric": float | None, "iteration": int | None}

``last.pt`` and ``best.pt`` of a run share this layout. The official release files
(``BESTIE_HRNet48_*.pt``) are read too, recognised from their keys
(:mod:`bestie_train.model.official`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from bestie_labels.core.errors import BestieError
from bestie_labels.core.training import save_state

#: The version of the checkpoint layout, recorded as ``format`` (``kind`` names the command).
CHECKPOINT_VERSION = 1
KIND = "bestie-train"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (see module doc; ``format`` and ``kind`` are added) atomically."""
    state = dict(state)
    state["format"] = CHECKPOINT_VERSION
    state["kind"] = KIND
    return save_state(path, state)


def load_checkpoint(path: str | os.PathLike, num_classes: int | None = None,
                    class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Read and check a checkpoint (tensors on the CPU).

    Args:
        path: ``last.pt`` / ``best.pt``, or an official release file (it takes the dataset's
            class names, or default ones when ``class_names`` is None).
        num_classes: when given, the number of classes of the dataset it will be used with.
        class_names: when given, the dataset's class names: the same names in another order are
            refused (class k would be read as another class); a different set only warns.

    Raises:
        BestieError: naming the file, when it is missing, unreadable, not a bestie-train
            checkpoint, of another format, made for another number of classes, or for the
            dataset's classes in another order.
    """
    path = Path(path)
    if not path.is_file():
        raise BestieError("checkpoint not found", path)
    from bestie_labels.core.safe_load import describe, kind_of, load_torch_file

    from .model.official import official_checkpoint

    ckpt = load_torch_file(path)
    official = official_checkpoint(ckpt, path, num_classes, class_names)
    ckpt = {"kind": KIND, "format": CHECKPOINT_VERSION, **official} if official else ckpt
    if kind_of(ckpt) != KIND or "model" not in ckpt:
        raise BestieError(f"is {describe(ckpt)}: not a bestie-train checkpoint (`bestie-train fit` writes "
                          "last.pt / best.pt, or an official BESTIE_HRNet48_*.pt)", path)
    if ckpt.get("format") != CHECKPOINT_VERSION:
        raise BestieError(f"checkpoint format {ckpt.get('format')} is not supported "
                          f"(expected {CHECKPOINT_VERSION})", path)
    names = list(ckpt.get("class_names") or [])
    if not names:
        raise BestieError("checkpoint has no class names", path)
    if num_classes is not None and len(names) != int(num_classes):
        raise BestieError(f"checkpoint is for {len(names)} classes but the dataset has {int(num_classes)}",
                          path)
    if class_names is not None and sorted(map(str, class_names)) == sorted(names) and list(class_names) != names:
        # the same classes in another order would score (and label) every class as another one
        k = next(k for k, (a, b) in enumerate(zip(names, class_names)) if a != b)
        raise BestieError(f"checkpoint classes are the dataset's in another order (class {k} is {names[k]!r} "
                          f"in the checkpoint, {class_names[k]!r} in the dataset); use the dataset it was "
                          "trained on, or list its classes in the checkpoint's order", path)
    if class_names is not None and list(class_names) != names:
        warnings.warn(f"{path}: checkpoint classes {names[:4]}... differ from the dataset's "
                      f"{list(class_names)[:4]}...; predictions use the dataset's order", stacklevel=2)
    return ckpt


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the network of a loaded checkpoint, in eval mode on ``device``."""
    from .model import build_model

    opts = ckpt.get("options", {})
    model = build_model(opts.get("backbone", "tiny"), len(ckpt["class_names"]), pretrained=None)
    model.load_state_dict(ckpt["model"])
    # Inference defaults follow the supervision (point labels: flip TTA, as the official script).
    model.sup = opts.get("sup", "cls")
    return model.to(device).eval()
