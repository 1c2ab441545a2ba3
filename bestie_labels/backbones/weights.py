"""Load local pretrained weights into a module, loudly reporting what did not match.

Nothing is ever downloaded: the user passes a file (e.g. torchvision's ``resnet50-*.pth`` or the
official ``hrnetv2_w48_imagenet_pretrained.pth``) and :func:`load_pretrained` maps it onto the
module by key name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from bestie_labels.core.errors import BestieError


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did (all lists of state-dict key names, sorted)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)      # in the module (not ignored), not in the file
    unexpected: list[str] = field(default_factory=list)   # in the file, not in the module
    ignored: list[str] = field(default_factory=list)      # in the file, dropped by ignore_prefixes

    def summary(self) -> str:
        """One line: counts of loaded / missing / unexpected / ignored keys."""
        return (f"{self.path}: loaded {len(self.loaded)} tensors, {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.ignored)} ignored")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict on the CPU.

    Accepts a raw state dict or a dict holding one under ``state_dict`` or ``model``; a
    ``module.`` prefix (DataParallel / DDP) is stripped. Raises ``BestieError`` when the file is
    missing, unreadable or holds no tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BestieError("pretrained weights file not found", path)
    from ..core.safe_load import describe, kind_of, load_torch_file

    obj = load_torch_file(path, what="weights file")
    if kind_of(obj) in ("bestie-pam", "bestie-train"):
        raise BestieError(f"is {describe(obj)}, not pretrained backbone weights (e.g. torchvision's "
                          "ImageNet files)", path)
    state = state_dict_of(obj)
    if state is None:
        raise BestieError(f"expected a state dict, found {type(obj).__name__}", path)
    if not state:
        raise BestieError("the file holds no tensors", path)
    return state


def state_dict_of(obj) -> dict[str, torch.Tensor] | None:
    """The ``{key: tensor}`` state dict of a loaded checkpoint: ``obj`` itself or the dict under
    ``state_dict`` / ``model``, tensors only, a ``module.`` prefix (DataParallel / DDP) stripped;
    None when ``obj`` is not a dict."""
    if isinstance(obj, dict):
        for k in ("state_dict", "model"):
            if isinstance(obj.get(k), dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict):
        return None
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()
            if isinstance(v, torch.Tensor)}


def load_pretrained(module: nn.Module, path: str | os.PathLike, ignore_prefixes: tuple[str, ...] = ("fc.",),
                    verbose: bool = True) -> LoadReport:
    """Copy matching tensors of the state dict in ``path`` into ``module`` (``strict=False``).

    Args:
        module: the target (e.g. a backbone); its parameters and buffers are overwritten in place.
        path: a local file written by ``torch.save`` (see :func:`read_state_dict`).
        ignore_prefixes: file keys starting with one of these are dropped on purpose (the
            classification head ``fc.``, HRNet's ``incre_modules.`` / ``classifier.`` ...).
        verbose: print the summary and every missing / unexpected key on stderr.

    Returns:
        a :class:`LoadReport`.

    Raises:
        BestieError: no key of the file matches the module, or a matching key has another shape.
    """
    state = read_state_dict(path)
    report = LoadReport(path=os.fspath(path))
    report.ignored = sorted(k for k in state if k.startswith(tuple(ignore_prefixes)))
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes))}
    own = module.state_dict()
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and v.shape != own[k].shape]
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise BestieError(f"{len(bad)} tensors have the wrong shape (file vs model): {'; '.join(bad[:3])}{more}", path)
    matched = [k for k in state if k in own]
    if not matched:
        raise BestieError(f"no key matches the model (file keys look like {', '.join(sorted(state)[:3])}; "
                          f"model keys like {', '.join(list(own)[:3])})", path)
    result = module.load_state_dict(state, strict=False)
    report.loaded = sorted(matched)
    # module keys under an ignored prefix (the ImageNet fc) are not expected from the file
    report.missing = sorted(k for k in result.missing_keys if not k.startswith(tuple(ignore_prefixes)))
    report.unexpected = sorted(result.unexpected_keys)
    if verbose:
        print(f"[load_pretrained] {report.summary()}", file=sys.stderr)
        if report.missing:
            print(f"[load_pretrained] WARNING: {len(report.missing)} model tensors were NOT in the file "
                  "and keep their random initialisation:", file=sys.stderr)
            for k in report.missing:
                print(f"    missing: {k}", file=sys.stderr)
        if report.unexpected:
            print(f"[load_pretrained] WARNING: {len(report.unexpected)} file tensors match nothing in the model:",
                  file=sys.stderr)
            for k in report.unexpected:
                print(f"    unexpected: {k}", file=sys.stderr)
    return report
