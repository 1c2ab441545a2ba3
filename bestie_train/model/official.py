"""Files of the official BESTIE release, recognised from their keys, for the trainer's network.

* ``BESTIE_HRNet48_image_label.pt`` / ``BESTIE_HRNet48_point_label.pt``: ``{'model': state_dict}``
  of the pose-HRNet network (no ``module.`` prefix; heads ``seg.{0,2}``, ``center.{0,2}``,
  ``offset.{0,2}``). They hold no class names: the dataset's are used, and a dataset whose
  class count differs from the heads' is refused in one line.
* ``hrnet_w48-8ef0771d.pth`` / ``hrnet_w32-36af842e.pth``: HRNet ImageNet classification weights
  (a raw state dict; its classification head and the last module's extra fusion rows are
  ignored, see :class:`bestie_labels.backbones.hrnet.HRNet`).

:func:`official_checkpoint` turns a release file into the checkpoint dict that
:func:`bestie_train.checkpoint.load_checkpoint` returns; :func:`load_start_weights` loads any
weights file (ImageNet, a release file, or a checkpoint of ours) at the start of ``fit``.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import nn

from bestie_labels.core.errors import BestieError

#: keys whose presence makes a state dict the official BESTIE HRNet network
OFFICIAL_HEAD_KEYS = ("seg.2.weight", "center.2.weight", "offset.2.weight", "transition1.0.0.weight")


def official_hrnet_info(state: dict[str, Any]) -> dict[str, int] | None:
    """``{"width": 32|48, "num_classes": C}`` when ``state`` is an official BESTIE HRNet state dict
    (heads ``seg``/``center``/``offset`` and an HRNet trunk), else None. Width and C come from
    ``transition1.0.0.weight (W, 256, 3, 3)`` and ``center.2.weight (C, 256, 1, 1)``."""
    if not isinstance(state, dict) or not all(isinstance(state.get(k), torch.Tensor) for k in OFFICIAL_HEAD_KEYS):
        return None
    return {"width": int(state["transition1.0.0.weight"].shape[0]),
            "num_classes": int(state["center.2.weight"].shape[0])}


def _check_heads(state: dict, info: dict, path, num_classes: int | None) -> None:
    c = info["num_classes"]
    if state["seg.2.weight"].shape[0] != c + 1 or state["offset.2.weight"].shape[0] != 2:
        raise BestieError(f"official BESTIE checkpoint with inconsistent heads (center {c}, seg "
                          f"{state['seg.2.weight'].shape[0]}, offset {state['offset.2.weight'].shape[0]})", path)
    if num_classes is not None and int(num_classes) != c:
        raise BestieError(f"official BESTIE HRNet-W{info['width']} checkpoint: its heads are for {c} classes "
                          f"but the dataset has {int(num_classes)}", path)


def default_class_names(n: int) -> list[str]:
    """The VOC names for 20 classes, else ``class0``, ``class1``, ... (release files hold none)."""
    from bestie_labels.datasets.base import VOC_CLASSES

    return list(VOC_CLASSES) if n == len(VOC_CLASSES) else [f"class{k}" for k in range(n)]


def official_checkpoint(obj: Any, path: str | os.PathLike, num_classes: int | None = None,
                        class_names: Sequence[str] | None = None) -> dict[str, Any] | None:
    """A loaded release file (``{'model': state_dict}``) as the body of a bestie-train checkpoint
    dict (``model``, ``options={"backbone": "hrnet_wW"}``, ``class_names``:
    the dataset's when given, else :func:`default_class_names`, ``official=True``); None when
    ``obj`` is not one; :func:`bestie_train.checkpoint.load_checkpoint` adds ``kind`` and
    ``format``. Raises ``BestieError`` naming ``path`` on a class-count mismatch."""
    if not isinstance(obj, dict) or "kind" in obj:
        return None
    from bestie_labels.backbones.weights import state_dict_of

    state = state_dict_of(obj)
    info = official_hrnet_info(state)
    if info is None:
        return None
    _check_heads(state, info, path, num_classes)
    names = list(class_names) if class_names is not None else default_class_names(info["num_classes"])
    return {"model": state, "options": {"backbone": f"hrnet_w{info['width']}"},
            "class_names": names, "official": True}


def _whole_network_state(state: dict, model: nn.Module, path) -> dict | None:
    """The state dict to load into the whole ``model`` when the file is a whole network (an
    official release file, or the ``model`` of a checkpoint of ours), else None."""
    info = official_hrnet_info(state)
    name = getattr(model, "backbone_name", "?")
    if info is not None:
        if name != f"hrnet_w{info['width']}":
            raise BestieError(f"an official BESTIE HRNet-W{info['width']} checkpoint cannot start a {name} "
                              f"network; use --backbone hrnet_w{info['width']}", path)
        _check_heads(state, info, path, model.num_classes)
        return state
    own = model.state_dict()
    if set(own) <= set(state):
        bad = [k for k in own if state[k].shape != own[k].shape]
        if bad:
            raise BestieError(f"the weights are a whole {name} network of other shapes (e.g. {bad[0]} "
                              f"{tuple(state[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}): another "
                              "backbone or class count", path)
        return {k: state[k] for k in own}
    return None


def load_start_weights(model: nn.Module, path: str | os.PathLike, verbose: bool = True):
    """Load the weights of ``path`` into a freshly built trainer network, by the file's kind.

    * a whole network (official release file, or ``best.pt`` / ``last.pt`` of ours): every
      tensor, heads included (``strict``); its class count must be the model's;
    * otherwise ImageNet weights of the backbone, by key name
      (:func:`bestie_labels.backbones.weights.load_pretrained`: missing / unexpected keys are
      reported, a wrong shape or no matching key is a BestieError).

    Returns the :class:`~bestie_labels.backbones.weights.LoadReport`.
    """
    import sys

    from bestie_labels.backbones.weights import LoadReport, load_pretrained, read_state_dict

    state = read_state_dict(path)
    whole = _whole_network_state(state, model, path)
    if whole is not None:
        result = model.load_state_dict(whole, strict=True)
        report = LoadReport(path=os.fspath(path), loaded=sorted(whole),
                            missing=sorted(result.missing_keys), unexpected=sorted(result.unexpected_keys))
        if verbose:
            print(f"[load_start_weights] whole network: {report.summary()}", file=sys.stderr)
        return report
    target = getattr(model, "backbone", model)  # PoseHRNet is its own trunk
    return load_pretrained(target, path, ignore_prefixes=getattr(target, "pretrained_ignore_prefixes", ()),
                           verbose=verbose)
