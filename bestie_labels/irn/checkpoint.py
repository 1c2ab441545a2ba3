"""IRN checkpoints: the boundary head, the classifier it was trained on, options and state.

``torch.save``'d dict::

    format: "bestie-irn", version: 1,
    head: state dict of the boundary head (the trunk is the classifier's, frozen),
    classifier: dict(model, options, class_names) of the PAM checkpoint (so that ``wsss`` needs
        only this file), options: dict (thresholds, radius, beta, ..., classifier_sha256),
    epoch, optimizer, rng, history: list of dict(epoch, loss, seconds)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


from ..classifier.model import build_classifier
from ..core.errors import BestieError
from .model import BoundaryNet

FORMAT = "bestie-irn"
VERSION = 1


def read_irn_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate an IRN checkpoint; a PAM checkpoint or anything else is a BestieError."""
    path = Path(path)
    if not path.is_file():
        raise BestieError("checkpoint not found", path)
    from ..core.safe_load import check_entries, load_torch_file

    obj = load_torch_file(path)  # weights_only: a crafted file runs no code
    if isinstance(obj, dict) and obj.get("format") == "bestie-pam":
        raise BestieError("this is a PAM classifier checkpoint: train the IRN boundary network from it "
                          "with `bestie-labels train-irn`, or use `wsss --method cam`", path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BestieError("not a bestie IRN checkpoint (made by `bestie-labels train-irn`)", path)
    return check_entries(obj, VERSION, ("head", "classifier", "options"), path)


def classifier_from(ck: dict[str, Any]):
    """The :class:`~bestie_labels.classifier.model.PAMClassifier` stored in a PAM or IRN
    checkpoint dict (eval mode, CPU, ``test_size`` set as :func:`load_classifier` does)."""
    opts = ck["options"]
    model = build_classifier(opts["backbone"], len(ck["class_names"]), pam=opts.get("pam", True),
                             alpha=opts.get("alpha", 0.7), output_stride=opts.get("output_stride", 16))
    model.load_state_dict(ck["model"], strict=True)
    model.test_size = opts.get("test_size") or opts.get("crop_size")
    return model.eval()


def load_irn(path: str | os.PathLike, device="cpu", num_classes: int | None = None):
    """``(classifier, boundary_net, checkpoint dict)`` on ``device``, both in eval mode."""
    ck = read_irn_checkpoint(path)
    cls_ck = ck["classifier"]
    n = len(cls_ck["class_names"])
    if num_classes is not None and int(num_classes) != n:
        raise BestieError(f"checkpoint is for {n} classes ({', '.join(cls_ck['class_names'])}) but the "
                          f"dataset has {num_classes}", path)
    try:
        classifier = classifier_from(cls_ck)
        net = BoundaryNet(classifier)
        net.load_state_dict({**{f"trunk.{k}": v for k, v in classifier.backbone.state_dict().items()},
                             **ck["head"]}, strict=True)
    except RuntimeError as e:
        raise BestieError(f"checkpoint weights do not fit ({str(e).splitlines()[0]})", path) from None
    return classifier.to(device), net.eval().to(device), ck
