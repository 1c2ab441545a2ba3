"""Validated reads of one image from a stage store, for every command that reads stores.

A store can be of another size than the dataset's images (made from other images under the same
ids) or damaged (edited, written by a buggy tool: a class out of range, an instance id beyond
the instance count, a missing dataset). Using either would write a silently wrong output, and
indexing with bad values would crash with a traceback; these readers raise one
:class:`~bestie_labels.core.errors.BestieError` naming the store instead:

* ``image <id>: ... is WxH but the image is WxH`` for a size mismatch;
* ``store is damaged: image <id>: ...`` for anything else.

Each read returns a typed record (:class:`Cues`, :class:`Wsss`, :class:`Pseudo`), the same for
the stages and the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..core.constants import VOID
from ..core.errors import BestieError

if TYPE_CHECKING:  # the store layer is below the datasets: it names their records in annotations only
    from ..datasets.base import Record



@dataclass(frozen=True)
class Cues:
    """The cues of one image: ``points (N, 4) float32`` rows ``x, y, cls, conf`` (cls 0-based)."""

    points: np.ndarray


@dataclass(frozen=True)
class Wsss:
    """The WSSS class mask of one image: ``mask (H, W) uint8`` (0 background, k + 1 class k,
    :data:`~bestie_labels.core.constants.VOID` ignore)."""

    mask: np.ndarray


@dataclass(frozen=True)
class Pseudo:
    """The pseudo instances of one image.

    ``instances (H, W)`` integer (0 none, n = instance n - 1; the store's ``uint16``),
    ``classes (N,) int32`` (0-based), ``centers (N, 2) float32`` (x, y), ``scores (N,) float32``.
    """

    instances: np.ndarray
    classes: np.ndarray
    centers: np.ndarray
    scores: np.ndarray


def _damaged(store, image_id: str, problem: str) -> BestieError:
    return BestieError(f"store is damaged: image {image_id}: {problem}", store.path)


def _read(store, image_id: str, keys: tuple[str, ...]) -> dict:
    d = store.read(image_id)
    for k in keys:
        if k not in d:
            raise _damaged(store, image_id, f"no '{k}' array")
    return d


def _check_size(store, rec: Record, shape: tuple, what: str) -> None:
    if len(shape) != 2:
        raise _damaged(store, rec.image_id, f"{what} has shape {shape}, expected (H, W)")
    if tuple(shape) != (rec.height, rec.width):
        raise BestieError(f"image {rec.image_id}: {what} is {shape[1]}x{shape[0]} but the image is "
                          f"{rec.width}x{rec.height} (a store made from other images?)", store.path)


def read_pseudo(store, rec: Record, num_classes: int) -> Pseudo:
    """The :class:`Pseudo` instances of one image, checked: the image's size, classes in
    ``0..C-1``, instance ids ``<= N``, matching lengths."""
    d = _read(store, rec.image_id, ("instances", "classes", "centers", "scores"))
    inst = np.asarray(d["instances"])
    _check_size(store, rec, inst.shape, "pseudo instance map")
    if not np.issubdtype(inst.dtype, np.integer):
        raise _damaged(store, rec.image_id, f"instance map of dtype {inst.dtype}")
    classes = np.asarray(d["classes"]).reshape(-1)
    n = classes.shape[0]
    if np.asarray(d["centers"]).size != 2 * n or np.asarray(d["scores"]).size != n:
        raise _damaged(store, rec.image_id, f"{n} classes but {np.asarray(d['centers']).size // 2} centers and "
                                            f"{np.asarray(d['scores']).size} scores")
    if n and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
        bad = int(classes.min()) if int(classes.min()) < 0 else int(classes.max())
        raise _damaged(store, rec.image_id, f"class {bad} is out of range 0..{num_classes - 1}")
    top = int(inst.max()) if inst.size else 0
    if top > n or (inst.size and int(inst.min()) < 0):
        raise _damaged(store, rec.image_id, f"instance id {top} but only {n} instances")
    centers = np.asarray(d["centers"], np.float32).reshape(n, 2)
    scores = np.asarray(d["scores"], np.float32).reshape(n)
    _check_centers(store, rec, centers, scores)
    return Pseudo(instances=inst, classes=classes.astype(np.int32), centers=centers, scores=scores)


def _check_centers(store, rec: Record, centers: np.ndarray, scores: np.ndarray) -> None:
    """Centers ``(N, 2)`` (x, y) finite and inside the image, scores ``(N,)`` finite: exports
    would write ``nan`` or points that the points reader refuses."""
    if not np.isfinite(centers).all():
        raise _damaged(store, rec.image_id, "a center is not a finite number")
    if not np.isfinite(scores).all():
        raise _damaged(store, rec.image_id, "a score is not a finite number")
    x, y = centers[:, 0], centers[:, 1]
    if (x < 0).any() or (y < 0).any() or (x >= rec.width).any() or (y >= rec.height).any():
        raise _damaged(store, rec.image_id, f"a center lies outside the {rec.width}x{rec.height} image")


def read_wsss(store, rec: Record, num_classes: int) -> Wsss:
    """The :class:`Wsss` mask of one image, checked: the image's size, values 0..C or
    :data:`~bestie_labels.core.constants.VOID`."""
    d = _read(store, rec.image_id, ("mask",))
    mask = np.asarray(d["mask"])
    _check_size(store, rec, mask.shape, "WSSS mask")
    if mask.dtype != np.uint8 and mask.size and (mask.min() < 0 or mask.max() > VOID):
        bad = int(mask.max()) if mask.max() > VOID else int(mask.min())
        raise _damaged(store, rec.image_id, f"WSSS value {bad} is not a class, background or ignore")
    mask = mask.astype(np.uint8, copy=False)
    # Values above the class count are rare (only 255): a max over the mask finds them, and only
    # then are they looked at.
    if mask.size and mask.max() > num_classes:
        high = mask[(mask > num_classes) & (mask != VOID)]
        if high.size:
            raise _damaged(store, rec.image_id, f"WSSS value {int(high.min())} is above the class count {num_classes}")
    return Wsss(mask)


def read_cues(store, rec: Record, num_classes: int) -> Cues:
    """The :class:`Cues` of one image, checked: points inside the image, classes in ``0..C-1``."""
    d = _read(store, rec.image_id, ("points",))
    pts = np.asarray(d["points"], np.float32)
    if pts.size % 4:
        raise _damaged(store, rec.image_id, f"points of shape {pts.shape}, expected (N, 4)")
    pts = pts.reshape(-1, 4)
    if len(pts):
        x, y, c = pts[:, 0], pts[:, 1], pts[:, 2]
        if not np.isfinite(pts).all():
            raise _damaged(store, rec.image_id, "a point is not a finite number")
        if (x < 0).any() or (y < 0).any() or (x >= rec.width).any() or (y >= rec.height).any():
            raise BestieError(f"image {rec.image_id}: a cue lies outside the {rec.width}x{rec.height} image "
                              "(a store made from other images?)", store.path)
        wrong = (c < 0) | (c >= num_classes) | (c != np.round(c))
        if wrong.any():
            raise _damaged(store, rec.image_id, f"cue class {float(c[wrong][0]):g} is not in 0..{num_classes - 1}")
    return Cues(pts)
