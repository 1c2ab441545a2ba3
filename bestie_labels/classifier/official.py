"""The official ``PAM.pth`` classifier checkpoint, recognised from its keys.

The release file is ``{'model': state_dict, 'epoch': int, 'iter': int}`` of the official VGG-16
PAM classifier: the trunk as ``features.N.{weight,bias}`` (torchvision indices, N = 0, 2, 5, ...,
28), the same tensors again under the aliases ``layerI_convJ.*`` (the official module holds
both names), and ``extra_conv1..3`` (512 -> 512, 3x3) and ``extra_conv4`` (512 -> C, 1x1; C =
20 for VOC). It holds no class names and no options: the dataset's names are used, and the
official inference settings (PAM alpha 0.7, shorter side 321) are those of its
``point_extraction.py``.

:func:`official_pam_state` maps it onto :class:`~bestie_labels.classifier.model.PAMClassifier`
(``backbone.features.N.*``, ``extra.{0,2,4}.*``, ``classifier.*``);
:func:`read_classifier_checkpoint` reads a checkpoint of either kind once, with
``torch.load(..., weights_only=True)``; :func:`load_start_weights` starts ``train-pam`` from one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..core.errors import BestieError

#: keys whose presence makes a state dict the official PAM classifier
OFFICIAL_KEYS = ("features.0.weight", "features.28.weight", "extra_conv1.weight", "extra_conv4.weight")
#: official module aliases of the trunk's convolutions: ``layerI_convJ`` -> ``features.N``
ALIASES = {f"layer{i}_conv{j}": n for (i, j), n in zip(
    [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 1), (4, 2), (4, 3), (5, 1), (5, 2), (5, 3)],
    (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28))}
#: official ``extra_convK`` -> ours
EXTRA = {"extra_conv1": "extra.0", "extra_conv2": "extra.2", "extra_conv3": "extra.4", "extra_conv4": "classifier"}
#: options of the official point extraction (``PAM/point_extraction.py`` defaults)
OFFICIAL_OPTIONS = {"backbone": "vgg16", "alpha": 0.7, "pam": True, "input_size": 384, "crop_size": 321,
                    "test_size": 321}


def official_pam_info(state: Any) -> dict[str, int] | None:
    """``{"num_classes": C}`` (rows of ``extra_conv4.weight``) for an official PAM state dict, else None."""
    if not isinstance(state, dict) or not all(isinstance(state.get(k), torch.Tensor) for k in OFFICIAL_KEYS):
        return None
    return {"num_classes": int(state["extra_conv4.weight"].shape[0])}


def official_pam_state(state: dict[str, torch.Tensor], path) -> dict[str, torch.Tensor]:
    """The official state dict under our :class:`PAMClassifier` key names (aliases dropped).
    A key of no known kind is a BestieError naming ``path``."""
    out = {}
    for k, v in state.items():
        head, _, leaf = k.rpartition(".")
        if head.startswith("features."):
            out[f"backbone.{k}"] = v
        elif head in EXTRA:
            out[f"{EXTRA[head]}.{leaf}"] = v
        elif head not in ALIASES:
            raise BestieError(f"official PAM checkpoint with an unknown key {k!r}", path)
    return out


def _check_classes(info: dict, path, num_classes: int | None) -> None:
    if num_classes is not None and int(num_classes) != info["num_classes"]:
        raise BestieError(f"official PAM checkpoint: its classifier (extra_conv4) is for {info['num_classes']} "
                          f"classes but the dataset has {int(num_classes)}", path)


def official_classifier_checkpoint(obj: Any, path, num_classes: int | None = None,
                                   class_names: Sequence[str] | None = None) -> dict[str, Any] | None:
    """A loaded ``PAM.pth`` as the dict :func:`~bestie_labels.classifier.checkpoint.load_checkpoint`
    returns (``model`` in our key names, ``options`` = :data:`OFFICIAL_OPTIONS`, ``class_names``:
    the given ones, else the VOC names for 20 classes or ``class0``..., ``official=True``);
    None when ``obj`` is not one. A class-count mismatch is a BestieError naming ``path``."""
    if not isinstance(obj, dict):
        return None
    from ..backbones.weights import state_dict_of

    state = state_dict_of(obj)
    info = official_pam_info(state)
    if info is None:
        return None
    _check_classes(info, path, num_classes)
    from ..datasets.base import VOC_CLASSES
    from .checkpoint import FORMAT, VERSION

    n = info["num_classes"]
    names = list(class_names) if class_names is not None else (
        list(VOC_CLASSES) if n == len(VOC_CLASSES) else [f"class{k}" for k in range(n)])
    return {"format": FORMAT, "version": VERSION, "model": official_pam_state(state, path),
            "options": dict(OFFICIAL_OPTIONS), "class_names": names,
            "epoch": obj.get("epoch") if isinstance(obj.get("epoch"), int) else None, "history": [],
            "official": True}


def read_classifier_checkpoint(path: str | os.PathLike, num_classes: int | None = None) -> dict[str, Any]:
    """Read a classifier checkpoint, official (``PAM.pth``) or of ``train-pam``.

    The file is read once, with ``weights_only=True``
    (:func:`bestie_labels.core.safe_load.load_torch_file`); an official one is converted by
    :func:`official_classifier_checkpoint`, anything else is checked as ours
    (:func:`~bestie_labels.classifier.checkpoint.check_checkpoint`).
    """
    from ..core.safe_load import load_torch_file
    from .checkpoint import check_checkpoint

    path = Path(path)
    if not path.is_file():
        raise BestieError("checkpoint not found", path)
    obj = load_torch_file(path)
    return official_classifier_checkpoint(obj, path, num_classes) or check_checkpoint(obj, path)


def load_start_weights(model: nn.Module, path: str | os.PathLike, verbose: bool = True):
    """Start ``train-pam`` from ``path``, by the file's kind.

    * the official ``PAM.pth`` (vgg16 only, same class count) or a whole classifier of ours:
      every tensor (``strict``);
    * otherwise ImageNet weights of the trunk in torchvision's layout
      (:func:`bestie_labels.backbones.weights.load_pretrained`, which reports what did not
      match and refuses wrong shapes).

    Returns the :class:`~bestie_labels.backbones.weights.LoadReport`.
    """
    import sys

    from ..backbones.weights import LoadReport, load_pretrained, read_state_dict

    state = read_state_dict(path)
    info = official_pam_info(state)
    own = model.state_dict()
    if info is not None:
        if getattr(model, "backbone_name", None) != "vgg16":
            raise BestieError(f"the official PAM checkpoint is a vgg16 classifier, not "
                              f"{getattr(model, 'backbone_name', '?')}; use --backbone vgg16", path)
        _check_classes(info, path, getattr(model, "num_classes", None))
        state = official_pam_state(state, path)
    elif set(own) <= set(state):
        state = {k: state[k] for k in own}
    else:
        return load_pretrained(model.pretrained_module, path, ignore_prefixes=(), verbose=verbose)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        raise BestieError(f"the classifier weights do not fit ({msg[:240]})", path) from None
    report = LoadReport(path=os.fspath(path), loaded=sorted(state))
    if verbose:
        print(f"[load_start_weights] whole classifier: {report.summary()}", file=sys.stderr)
    return report
