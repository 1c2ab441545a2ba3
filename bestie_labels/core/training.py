"""What the trainers share: device check, RNG state, atomic checkpoints, resume, progress, metrics log.

Used by ``train-pam`` (:mod:`bestie_labels.classifier.train`), ``train-irn`` and ``bestie-train
fit`` (:mod:`bestie_train.fit`); ``bestie_train`` imports this module, never the reverse.

* :func:`check_device` / :func:`resolve_device`: ``--device cuda`` without CUDA is one line;
* :func:`rng_state` / :func:`set_rng_state`: the global torch (and CUDA), numpy and Python
  generators as tensors, numbers and lists only (a checkpoint holding them loads with
  ``weights_only=True``);
* :func:`save_state`: ``torch.save`` to a temporary file renamed into place;
* :func:`previous_run`: the resume decision every trainer makes (continue, refuse, start over);
* :func:`progress_bar`: the tqdm bar of a training loop;
* :class:`MetricsLog`: a JSON-lines log written one fsynced line at a time.
"""

from __future__ import annotations

import errno
import json
import os
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import BestieError
from .fileio import atomic_path


# ------------------------------------------------------------------------------------------
# device
# ------------------------------------------------------------------------------------------
def check_device(device: str) -> None:
    """Refuse ``--device cuda`` on a machine without CUDA (before any work)."""
    if str(device).split(":")[0] == "cuda" and not torch.cuda.is_available():
        raise BestieError("--device cuda but CUDA is not available")


def resolve_device(device: str) -> torch.device:
    """``torch.device(device)`` after :func:`check_device`."""
    check_device(device)
    return torch.device(device)


def device_is_cpu(device: str) -> bool:
    return str(device).split(":")[0] == "cpu"


# ------------------------------------------------------------------------------------------
# RNG state
# ------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The state of torch's (CPU and CUDA), numpy's and Python's global generators::

        {"torch": ByteTensor, "cuda": [ByteTensor per device] (empty without CUDA),
         "numpy": [name, (624,) int64 tensor, pos, has_gauss, cached],
         "python": [version, list of 625 ints, gauss_next]}
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [str(name), torch.from_numpy(np.asarray(keys, np.int64)), int(pos), int(has_gauss),
                      float(cached)],
            "python": [int(version), list(internal), gauss_next]}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (an empty dict restores nothing). The CUDA states
    are restored when the machine has as many devices as when they were taken. A ``python``
    entry in the older layout of ``fit`` checkpoints (the 625 ints, then the version) is read too."""
    if not state:
        return
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state.get("numpy")
    if n:
        name, keys, pos, has_gauss, cached = n
        keys = keys.numpy() if torch.is_tensor(keys) else np.asarray(keys)
        np.random.set_state((name, keys.astype(np.int64).astype(np.uint32), pos, has_gauss, cached))
    p = state.get("python")
    if p:
        if len(p) == 3 and isinstance(p[1], (list, tuple)):
            random.setstate((p[0], tuple(p[1]), p[2]))
        else:  # older fit checkpoints: internal state then version, no gauss_next
            random.setstate((p[-1], tuple(p[:-1]), None))


# ------------------------------------------------------------------------------------------
# checkpoints and resume
# ------------------------------------------------------------------------------------------
def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` ``state`` to a temporary file next to ``path`` and rename it into place."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def previous_run(path: Path, resume: bool, force: bool, load: Callable[[Path], dict],
                 check: Callable[[dict], None], exists: str) -> dict | None:
    """The checkpoint a run continues from, or None when it starts afresh.

    ``path`` missing: None. Without ``resume``: None with ``force``, else ``BestieError(exists,
    path)``. With ``resume``: ``load(path)``, then ``check(ckpt)`` (raises a BestieError when the
    run was made with other options or inputs); a failed check gives None with ``force`` (the
    pipeline's ``--resume --force``: continue a matching run, else start over) and is raised
    without it.
    """
    if not path.exists():
        return None
    if not resume:
        if force:
            return None
        refuse_existing(path, load, exists)
    ckpt = load(path)
    try:
        check(ckpt)
    except BestieError:
        if not force:
            raise
        return None
    return ckpt


def refuse_existing(path: Path, load: Callable[[Path], Any], exists: str) -> None:
    """Raise ``BestieError(exists, path)`` when ``path`` is a checkpoint ``load`` reads; a file
    it cannot read (a text file, another command's checkpoint) is named as not one."""
    try:
        load(path)
    except BestieError as e:
        raise BestieError(f"exists and is not a checkpoint of this command ({e.problem}); pass --force to "
                          "replace it, or choose another --out", path) from None
    raise BestieError(exists, path)


# ------------------------------------------------------------------------------------------
# progress and metrics log
# ------------------------------------------------------------------------------------------
def progress_bar(iterable=None, **kwargs):
    """A tqdm bar that follows the terminal's width (``kwargs`` go to tqdm)."""
    from tqdm import tqdm

    return tqdm(iterable, dynamic_ncols=True, **kwargs)


class MetricsLog:
    """A JSON-lines file (``metrics.jsonl``): append one line at a time (write, flush, fsync).

    ``on_full_disk`` is the advice added to the one-line error of a full disk.
    """

    def __init__(self, path: Path, on_full_disk: str = "last.pt holds the last checkpoint and a rerun "
                                                     "with --resume continues"):
        self.path = Path(path)
        self.on_full_disk = on_full_disk

    def read(self) -> list[dict]:
        """Every complete, parseable line (a torn last line is skipped)."""
        if not self.path.is_file():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate(self, iteration: int) -> None:
        """Drop every line logged after ``iteration`` (atomic rewrite)."""
        if not self.path.is_file():
            return  # nothing logged yet: create nothing (a run that fails early leaves no folder)
        rows = [r for r in self.read() if int(r.get("iter", 0)) <= iteration]
        with atomic_path(self.path) as tmp:
            with open(tmp, "w") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")

    def append(self, row: dict) -> None:
        made = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # a full disk: name the file (write() errors carry no file name)
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            if self.path.is_file() and self.path.stat().st_size == 0:
                self.path.unlink()  # nothing logged: leave no empty file (a rerun would not know it)
                if made:
                    self.path.parent.rmdir()
            raise BestieError(f"no space left on the device ({os.strerror(e.errno)}); {self.on_full_disk}",
                              self.path) from None
