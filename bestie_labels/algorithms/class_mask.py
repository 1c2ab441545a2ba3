"""The check of a WSSS class mask against its image's image-level label (pure numpy)."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from ..core.constants import VOID
from ..core.errors import BestieError


def check_class_mask(mask: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path,
                     clean: bool = False) -> tuple[np.ndarray, Counter]:
    """Validate a WSSS class mask against the image-level label.

    Args:
        mask: ``(H, W) uint8``: 0 background, ``k + 1`` class k, 255 ignore.
        labels: ``(C,) bool``.
        class_names: for the messages.
        path: the mask's file, named in errors.
        clean: set classes the label does not list to 0 (background) instead of failing.

    Returns:
        ``(mask (H, W) uint8, warnings)``; warnings count ``cleaned_classes`` (classes removed)
        and ``no_foreground`` (a mask without any class pixel).

    Raises:
        BestieError: an index above the class count (other than 255), or (without ``clean``)
            a class the image-level label does not list.
    """
    c = len(labels)
    hist = np.bincount(mask.ravel(), minlength=256)
    present = np.flatnonzero(hist)
    bad = present[(present > c) & (present != VOID)]
    if bad.size:
        raise BestieError(f"mask index {bad[0]} is above the class count {c} (valid: 0 background, "
                          f"1..{c}, 255 ignore)", path)
    fg = present[(present >= 1) & (present <= c)]
    foreign = fg[~np.asarray(labels, bool)[fg - 1]]
    warn: Counter = Counter()
    if foreign.size:
        if not clean:
            k = int(foreign[0]) - 1
            raise BestieError(f"mask has class {k} ({class_names[k]}) that the image-level label does "
                              "not list (use --clean to set such pixels to background)", path)
        lut = np.arange(256, dtype=np.uint8)
        lut[foreign] = 0
        mask = lut[mask]
        warn["cleaned_classes"] += int(foreign.size)
    if fg.size == foreign.size:
        warn["no_foreground"] += 1
    return mask, warn
