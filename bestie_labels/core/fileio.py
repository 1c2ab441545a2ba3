"""Atomic file writes and small readers shared by every stage.

Every output is written to a temporary name in the destination folder and renamed into place
only when complete, so an interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from PIL import Image

from .errors import BestieError, NoSpaceError
from .orientation import apply_orientation, exif_orientation, file_orientation


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path``
    is left exactly as it was. ``suffix`` is appended to the temporary name (some writers
    choose the format from the extension).
    """
    path = Path(path)
    make_parent(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except IsADirectoryError:
            raise BestieError("is a folder: give the path of a file to write", path) from None
        except NotADirectoryError:
            raise BestieError("is a file: give the path of a folder to write", path) from None
        except OSError as e:
            if e.errno == errno.ENOTEMPTY:
                raise BestieError("cannot replace: a non-empty folder of that name exists", path) from None
            raise
    except BaseException as e:
        full = isinstance(e, (OSError, RuntimeError)) and _out_of_space(e, tmp)
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        if full:
            raise NoSpaceError(f"no space left on the device to write this file ({full}); the previous "
                              "version, if any, is intact and a rerun resumes", path) from None
        raise


#: How writers report a full disk: OSError ENOSPC / EDQUOT, HDF5's RuntimeError (errno only in its
#: text), torch.save's RuntimeError ("file write failed", no errno at all).
_NO_SPACE = ("No space left on device", "errno = 28", "Disk quota exceeded", "errno = 122")


def _out_of_space(e: BaseException, tmp: Path) -> str:
    """A short reason when ``e`` means the disk holding ``tmp`` is full, else ``""``."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return os.strerror(e.errno)
    text = str(e)
    if any(s in text for s in _NO_SPACE):
        return "No space left on device"
    if "write failed" in text or "unexpected pos" in text:
        try:
            free = shutil.disk_usage(tmp.parent).free
        except OSError:
            return ""
        # torch names no cause: call it a full disk only when the disk is (nearly) full
        size = tmp.stat().st_size if tmp.is_file() else 0
        if free < max(1 << 20, size // 10):
            return f"{free // 1024} KiB free"
    return ""


def make_parent(path: str | os.PathLike) -> None:
    """Create the folder of ``path``; a file where a folder should be is a BestieError."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BestieError("cannot create the output folder: a file of that name is in the way", parent) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Remove ``.<name>.<pid>.tmp*`` files next to ``path`` left by processes that are gone
    (a SIGKILL while :func:`atomic_path` was writing). Only temporaries of this very name are
    looked at, so that writers of other files in the folder (other machines of a sharded run
    included) are never touched."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for p in entries:
        rest = p.name[len(prefix):] if p.name.startswith(prefix) else None
        if rest is None or ".tmp" not in rest:
            continue
        pid = rest.split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            except OSError:
                pass


def ensure_free_space(path: str | os.PathLike, nbytes: int) -> None:
    """Refuse to start writing ``path`` when its disk has less than about ``nbytes`` free.

    HDF5 does not fail cleanly on a full disk (it reports the error from object destructors
    and can crash the interpreter), so the store writers check the space first.
    """
    path = Path(path)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    need = int(nbytes * 1.1) + (256 << 10)
    if free < need:
        raise NoSpaceError(f"no space left on the device: about {need // 1024} KiB needed, {free // 1024} KiB "
                          "free; earlier outputs are intact: free some space and rerun", path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    """Write ``obj`` as JSON atomically (removing temporaries a killed earlier write left)."""
    remove_stale_temporaries(Path(path))
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)
            f.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file is a :class:`BestieError`."""
    path = Path(path)
    if not path.is_file():
        raise BestieError("file not found", path)
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the JSON
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BestieError(f"not valid JSON ({e})", path) from None
    except RecursionError:
        raise BestieError("not valid JSON (nested too deeply)", path) from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image as ``(H, W, 3) uint8`` RGB, as displayed (its EXIF orientation
    applied: :mod:`bestie_labels.core.orientation`); unreadable files raise BestieError."""
    path = Path(path)
    if not path.is_file():
        raise BestieError("image not found", path)
    # OpenCV decodes a truncated JPEG with only a warning on stderr: check the end-of-image
    # marker first so that the user sees one line (some encoders pad after it with zeros).
    # The content decides, not the name: a PNG saved as .jpg is a good image.
    with open(path, "rb") as f:
        head = f.read(3)
        if not head:
            raise BestieError("empty file (0 bytes), not an image", path)
        if head == b"\xff\xd8\xff":
            f.seek(max(0, path.stat().st_size - 1024))
            if not f.read().rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9"):
                raise BestieError("truncated JPEG (no end-of-image marker)", path)
    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as e:  # OpenCV raises (not returns None) on a header claiming a huge size
        why = "its header claims more pixels than OpenCV decodes" if "MAX_IMAGE_PIXELS" in str(e) else "OpenCV error"
        raise BestieError(f"cannot decode image ({why})", path) from None
    if img is None:
        raise BestieError("cannot decode image (corrupt or not an image)", path)
    return apply_orientation(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), file_orientation(path))


def read_index_png(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a palette (or 8-bit grey) PNG of indices as ``(H, W) uint8`` (EXIF orientation
    applied, as for images).

    ``shape`` (H, W), when given, is checked. Palette indices are returned as stored (VOC:
    0 background, k = class k, 255 void); an RGB image is refused, because its colours would be
    silently read as indices.
    """
    path = Path(path)
    if not path.is_file():
        raise BestieError("mask not found", path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("P", "L"):
                raise BestieError(f"mask must be a palette or 8-bit grey PNG, got mode {im.mode}", path)
            arr = apply_orientation(np.asarray(im, dtype=np.uint8), exif_orientation(im))
    except BestieError:
        raise
    except Exception as e:  # PIL raises many types for corrupt files
        raise BestieError(f"cannot decode PNG ({type(e).__name__}: {e})", path) from None
    if shape is not None and arr.shape != tuple(shape):
        raise BestieError(
            f"mask is {arr.shape[1]}x{arr.shape[0]} but the image is {shape[1]}x{shape[0]}", path
        )
    return arr


def voc_palette() -> np.ndarray:
    """The PASCAL VOC colour map, ``(256, 3) uint8``."""
    pal = np.zeros((256, 3), np.uint8)
    idx = np.arange(256)
    for ch in range(3):
        for bit in range(8):
            pal[:, ch] |= (((idx >> (3 * bit + ch)) & 1) << (7 - bit)).astype(np.uint8)
    return pal


@functools.lru_cache(maxsize=1)
def _palette_list() -> tuple[int, ...]:
    return tuple(voc_palette().ravel().tolist())


def write_index_png(path: str | os.PathLike, arr: np.ndarray, atomic: bool = True) -> None:
    """Write ``(H, W) uint8`` indices as a VOC-palette PNG.

    ``atomic=False`` skips the temporary name, for writers that build a whole tree in a
    temporary folder and rename the folder.
    """
    im = Image.fromarray(np.asarray(arr, np.uint8), mode="P")
    im.putpalette(_palette_list())
    if not atomic:
        im.save(path, format="PNG")
        return
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of ``obj`` serialised as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
