"""The files of an HTML report folder: written only when their bytes change, never over a file
the report did not write, and remembered with what they were made from.

The folder's manifest ``.bestie-html.json`` holds, for every file the report wrote, a short
hash of its bytes (``files``: ``{relative path: hash}``), and for every image the key of its
inputs and its gallery statistics (``images``: ``{sid: {"key", "stats"}}``). A file is the
report's own when the manifest names it with the hash of the bytes there now; any other
existing file is refused (unless ``force``), as the output guard does for single files
(:mod:`bestie_labels.core.outputs`: the registry of one folder would not scale to 50,000 files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ...core.errors import BestieError
from ...core.fileio import atomic_path, write_text

MANIFEST = ".bestie-html.json"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def short_hash(data: bytes) -> str:
    """16 hex digits of the SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()[:16]


def safe_id(image_id: str) -> str:
    """A file-name-safe form of an image id (ids with other characters get a hash suffix)."""
    s = _SAFE.sub("_", image_id)
    return s if s == image_id else f"{s}-{short_hash(image_id.encode())[:8]}"


def write_owned(root: Path, rel: str, data: bytes, known: str | None, force: bool) -> tuple[str, bool]:
    """Write ``root/rel`` unless it holds ``data`` already.

    Args:
        known: the hash the manifest records for ``rel`` (None: the report never wrote it).
        force: replace an existing file the report did not write.

    Returns:
        ``(hash of data, whether the file was written)``.

    Raises:
        BestieError: ``rel`` exists, was not written by the report (or changed since), and not ``force``.
    """
    path = root / rel
    h = short_hash(data)
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = None
    except IsADirectoryError:
        raise BestieError("is a folder: the HTML report writes a file of that name", path) from None
    if old is not None:
        if old == data:
            return h, False
        if not force and short_hash(old) != known:
            raise BestieError("exists and was not written by this HTML report; pass --force to replace it, "
                              "or choose another folder", path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return h, True


class Manifest:
    """The manifest of a report folder (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST
        try:
            js = json.loads(self.path.read_text())
        except FileNotFoundError:
            js = {}
        except (OSError, ValueError):
            raise BestieError("is damaged (not JSON); remove it to rebuild the report from scratch",
                              self.path) from None
        self.files: dict[str, str] = dict(js.get("files", {}))
        self.images: dict[str, dict] = dict(js.get("images", {}))

    def save(self) -> None:
        write_text(self.path, json.dumps({"files": self.files, "images": self.images},
                                         separators=(",", ":"), sort_keys=True))

    def write(self, rel: str, data: bytes | str, force: bool) -> bool:
        """Write one site file (:func:`write_owned`) and record it; returns whether it was written."""
        if isinstance(data, str):
            data = data.encode()
        h, wrote = write_owned(self.root, rel, data, self.files.get(rel), force)
        self.files[rel] = h
        return wrote

    def check_folder(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise BestieError("exists and is not a folder", self.root)
        os.makedirs(self.root, exist_ok=True)
