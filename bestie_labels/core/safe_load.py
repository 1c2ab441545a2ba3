"""Read ``torch.save`` files without running code, and name what kind of file one is.

Every checkpoint or weights file the project reads goes through :func:`load_torch_file`:
``torch.load(..., weights_only=True)``, so a file holding anything but tensors, numbers,
strings, lists, tuples and dicts (a crafted pickle that would run a command when loaded) is
refused in one line, before any of its code can run. :func:`describe` names the kind of a loaded
file so that a checkpoint given to the wrong command is named as such.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .errors import BestieError

#: What each kind of file is called in messages (see :func:`kind_of`).
KINDS = {
    "bestie-pam": "a PAM classifier checkpoint of `bestie-labels train-pam`",
    "bestie-train": "an instance-network checkpoint of `bestie-train fit` (last.pt / best.pt)",
    "weights": "a plain state dict (pretrained weights), not a bestie checkpoint",
    "other": "not a bestie checkpoint",
}


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    Raises:
        BestieError: naming ``path``: the file holds other Python objects (it is not loaded:
            doing so could run code), or it cannot be read at all (``what`` names it).
    """
    import pickle
    import warnings

    import torch

    if _is_torchscript(path):
        raise BestieError(f"cannot read {what}: it is a TorchScript archive (torch.jit.save), which holds code; "
                          "give a torch.save file of tensors (a state dict or a bestie checkpoint)", path)
    try:
        with warnings.catch_warnings():  # torch warns on stderr before failing: one line is ours
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        m = re.search(r"GLOBAL ([\w.]+)|[Uu]nsupported class ([\w.]+)", text)
        if m:
            raise BestieError(f"refused: this {what} holds Python objects other than tensors, numbers, "
                              f"strings, lists and dicts (it refers to {m.group(1) or m.group(2)}); loading "
                              "it could run code, so bestie does not read it", path) from None
        # torch's own text suggests loading the file unsafely: keep only what went wrong
        m = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        why = _first_line(RuntimeError(m.group(1))) if m else _first_line(e)
        raise BestieError(f"cannot read {what}: not a torch.save file, or damaged ({why})", path) from None
    except Exception as e:  # zip, EOF and runtime errors come in many types
        raise BestieError(f"cannot read {what} ({type(e).__name__}: {_first_line(e)})", path) from None


def _first_line(e: Exception, limit: int = 120) -> str:
    """The first line of ``e``'s text, cut at a word (not mid-word) when over ``limit``."""
    s = str(e).strip()
    s = s.splitlines()[0] if s else type(e).__name__
    return s if len(s) <= limit else s[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."


def _is_torchscript(path) -> bool:
    """A ``torch.jit.save`` archive: a zip holding the module's code (``code/``, ``constants.pkl``)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return any(n.split("/", 1)[-1] == "constants.pkl" or "/code/" in f"/{n}" for n in names)


def kind_of(obj: Any) -> str:
    """``"bestie-pam"``, ``"bestie-train"``, ``"weights"`` (a dict of tensors, possibly under
    ``state_dict`` / ``model``) or ``"other"``."""
    import torch

    if not isinstance(obj, dict):
        return "other"
    if obj.get("format") == "bestie-pam":
        return "bestie-pam"
    if obj.get("kind") == "bestie-train":
        return "bestie-train"
    inner = obj
    for k in ("state_dict", "model"):
        if isinstance(obj.get(k), dict):
            inner = obj[k]
            break
    if inner and any(isinstance(v, torch.Tensor) for v in inner.values()):
        return "weights"
    return "other"


def describe(obj: Any) -> str:
    """What :func:`kind_of` says, in words for a message."""
    return KINDS[kind_of(obj)]


def check_entries(obj: dict, version: int, keys: tuple[str, ...], path) -> dict:
    """``obj`` (a bestie checkpoint dict) when its ``version`` is not newer than ``version`` and it
    holds every entry of ``keys``; else a one-line :class:`BestieError` naming ``path``."""
    if int(obj.get("version", -1)) > version:
        raise BestieError(f"checkpoint version {obj.get('version')} is newer than this program ({version})", path)
    for key in keys:
        if key not in obj:
            raise BestieError(f"checkpoint has no '{key}' entry", path)
    return obj
