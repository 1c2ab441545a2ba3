"""``demo-data`` as a stage like the others: up to date, rerun on other options, never destructive.

The generator records its options in ``OUT/.bestie-demo.json``. A run whose options equal the
recorded ones does nothing ("up to date", also in a copied work folder); a run with other
options replaces the tree, but only when every file in it is one the generator writes (the
VOC layout it makes); anything else there is refused unless ``force``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..core.errors import BestieError

MARKER = ".bestie-demo.json"

#: The files the generator writes, relative to OUT.
_OWN = re.compile(r"^(JPEGImages/\w+\.jpg|Annotations/\w+\.xml|Segmentation(Class|Object)/\w+\.png|points/\w+\.txt|"
                  r"ImageSets/Segmentation/(train|val|trainval)\.txt|class_names\.txt|"
                  + re.escape(MARKER) + r")$")


def demo_options(n_images: int, size: int, seed: int) -> dict:
    from ..core.version import __version__

    return {"images": int(n_images), "size": int(size), "seed": int(seed), "version": __version__}


def read_marker(out: str | os.PathLike) -> dict | None:
    try:
        return json.loads((Path(out) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def demo_state(out: str | os.PathLike, options: dict, force: bool = False) -> str:
    """``"current"`` (nothing to do), ``"write"`` (no tree yet) or ``"replace"`` (a demo tree made
    with other options, or anything with ``force``).

    Raises:
        BestieError: ``out`` holds files the generator did not write (without ``force``).
    """
    out = Path(out)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "write"
    if force:
        return "replace"
    if not out.is_dir():
        raise BestieError("exists and is not a folder (use --force to replace it)", out)
    marker = read_marker(out)
    if marker is None:
        raise BestieError("output exists and was not written by `bestie-labels demo-data` (use --force to "
                          "replace it)", out)
    foreign = [p.relative_to(out).as_posix() for p in sorted(out.rglob("*"))
               if p.is_file() and not _OWN.match(p.relative_to(out).as_posix())]
    if marker == options:
        return "current"
    if foreign:
        raise BestieError(f"output holds files demo-data did not write ({foreign[0]}, ...); use --force to "
                          "replace the tree, or another folder", out)
    return "replace"
