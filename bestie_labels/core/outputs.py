"""What a command may write: its own outputs, never its inputs, one run at a time.

Every writing command wraps its work in :func:`guard_outputs`, which enforces:

* **an existing output not written by this command is refused** unless ``force``. A command
  recognises its own files through a small registry in each output folder,
  ``.bestie-outputs.json`` (``{file name: {"command", "sha256": [...], "pending"}}``): a file is
  the command's own when the registry names this command and the file's bytes are those it
  wrote. A run killed while writing leaves its entry ``pending`` with the bytes of the command's
  last complete version: a file found there later is matched against those bytes like any other
  (a file someone put there after the kill is foreign). Stores and checkpoints
  carry their own header instead (:class:`~bestie_labels.store.file.StoreWriter`, the checkpoint
  loaders) and are not registered;
* **an output that is also an input is always refused**, ``force`` or not: the same file, or a
  file inside an input folder (a points folder, a mask folder, the dataset's image and GT
  folders);
* **one run per output**: a lock file ``.<name>.lock`` next to each output holds the pid of the
  run writing it (``flock``: the kernel releases it when that process dies, so a killed run's
  lock is taken over); a second run is refused in one line;
* **writing into a folder never removes a file**: writers add or replace the files they are
  given and nothing else (see :func:`bestie_labels.formats.label_trees._tree`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .errors import BestieError, NoSpaceError
from .fileio import make_parent, sha256_file

REGISTRY = ".bestie-outputs.json"


# ----------------------------------------------------------------------------------------
# locks
# ----------------------------------------------------------------------------------------
def lock_path(path: str | os.PathLike) -> Path:
    """``<folder>/.<name>.lock`` of an output file or folder."""
    p = Path(os.path.abspath(path))
    return p.with_name(f".{p.name}.lock")


class OutputLock:
    """An exclusive, non-blocking lock on one output (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.file = lock_path(path)
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        make_parent(self.file)
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise BestieError(f"another run (pid {holder}) is writing this output; wait for it to "
                                  "finish or stop it", self.path) from None
            # The holder we waited for may have removed the file after we opened it: lock the file
            # that is there now, not an unlinked one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.file))
            except FileNotFoundError:
                same = False
            if same:
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                except OSError:
                    pass  # a full disk: the flock alone still excludes other runs
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.file)
        os.close(self._fd)
        self._fd = None


# ----------------------------------------------------------------------------------------
# the registry of own files
# ----------------------------------------------------------------------------------------
def _read_registry(folder: Path) -> dict:
    try:
        with open(folder / REGISTRY) as f:
            reg = json.load(f)
    except (OSError, ValueError):
        return {}
    return reg if isinstance(reg, dict) else {}


@contextlib.contextmanager
def _registry(folder: Path, output: Path) -> Iterator[dict]:
    """Read-modify-write the folder's registry under an exclusive lock (other commands may
    write other files of the same folder at the same time); an empty registry is removed.
    ``output`` (a file of the folder) is named when the registry cannot be written."""
    import fcntl

    path = folder / REGISTRY
    while True:
        new = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        reg = _read_registry(folder)
        yield reg
        if reg:
            tmp = folder / f".{REGISTRY}.{os.getpid()}.tmp"
            try:
                tmp.write_text(json.dumps(reg, indent=0, sort_keys=True) + "\n")
                os.replace(tmp, path)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                if new and os.fstat(fd).st_size == 0:
                    os.unlink(path)  # the empty registry this call created (a full disk)
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise NoSpaceError(f"no space left on the device to record this output in {REGISTRY} "
                                      f"({os.strerror(e.errno)}); earlier outputs are intact", output) from None
                raise
        else:
            os.unlink(path)
    finally:
        os.close(fd)


def written_by(path: str | os.PathLike, command: str) -> bool:
    """Whether the file ``path`` was written by ``command`` (its registry entry and bytes)."""
    p = Path(path)
    e = _read_registry(p.parent).get(p.name)
    if not isinstance(e, dict) or e.get("command") != command:
        return False
    # "pending" (a killed run) proves nothing about the bytes there now: only the content counts
    known = e.get("sha256")
    if not isinstance(known, list):
        return False  # a damaged registry proves nothing either
    return sha256_file(p) in known


# ----------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------
def dataset_inputs(ds) -> tuple[list[str], list[str]]:
    """``(files, folders)`` a dataset split is read from: the image files, the VOC annotation,
    split, GT and points folders, the COCO JSON, the folder dataset's CSV and class list."""
    root = Path(getattr(ds, "root", "."))
    files = [r.file_name for r in ds.records]
    folders = []
    kind = getattr(ds, "kind", "")
    if kind == "voc":
        folders += [root / s for s in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject",
                                       "ImageSets")]
        files.append(root / "class_names.txt")
    elif kind == "folder":
        files += [root / "labels.csv", root / "class_names.txt"]
    for key in ("json_path", "labels_path"):
        if getattr(ds, key, None):
            files.append(getattr(ds, key))
    if getattr(ds, "points_dir", None):
        folders.append(ds.points_dir)
    return [os.fspath(f) for f in files], [os.fspath(f) for f in folders]


def _real(p: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(p))


def check_not_inputs(outputs: Iterable[str | os.PathLike], input_files: Iterable, input_dirs: Iterable) -> None:
    """Refuse an output that is an input file, inside an input folder, or a folder holding an
    input file of the same command (``force`` never allows it)."""
    files = {_real(f) for f in input_files if f is not None}
    dirs = [_real(d) for d in input_dirs if d is not None]
    parents: dict[str, str] = {}
    for out in outputs:
        o = os.path.abspath(os.fspath(out))
        parent = parents.get(os.path.dirname(o))
        if parent is None:
            parent = parents[os.path.dirname(o)] = _real(os.path.dirname(o))
        real = os.path.join(parent, os.path.basename(o))
        if os.path.islink(o):
            real = _real(o)
        if real in files:
            raise BestieError("is also an input of this command; choose another output", out)
        for d in dirs:
            if real == d or real.startswith(d + os.sep):
                raise BestieError(f"is inside an input folder ({d}); choose another output", out)


# ----------------------------------------------------------------------------------------
# the guard
# ----------------------------------------------------------------------------------------
def _refuse_foreign(files: Sequence[Path], command: str, force: bool) -> None:
    for p in files:
        if p.is_dir():
            raise BestieError("is a folder: give the path of a file to write", p)
        if p.exists() and not force and not written_by(p, command):
            raise BestieError(f"exists and was not written by `{command}`; pass --force to replace it, "
                              "or choose another output", p)


def _missing_folders(files: Sequence[Path]) -> list[Path]:
    """Folders of ``files`` (and their parents) that do not exist yet, deepest first."""
    out: set[Path] = set()
    for folder in {p.parent for p in files}:
        while not folder.exists() and folder != folder.parent:
            out.add(folder)
            folder = folder.parent
    return sorted(out, key=lambda d: -len(d.parts))


def _by_folder(files: Sequence[Path]) -> dict[Path, list[Path]]:
    out: dict[Path, list[Path]] = {}
    for p in files:
        out.setdefault(p.parent, []).append(p)
    return out


def _mark(files: Sequence[Path], command: str) -> dict[Path, dict]:
    """Mark ``files`` pending (this command is about to write them); returns the old entries."""
    saved: dict[Path, dict] = {}
    try:
        for folder, group in _by_folder(files).items():
            make_parent(group[0])
            with _registry(folder, group[0]) as reg:
                old = {p.name: reg.get(p.name) for p in group}
                for p in group:
                    e = old[p.name] if isinstance(old[p.name], dict) and old[p.name].get("command") == command else {}
                    known = e.get("sha256") if isinstance(e.get("sha256"), list) else []
                    reg[p.name] = {"command": command, "sha256": known[-1:], "pending": True}
            saved[folder] = old
    except BaseException:  # a full disk in a later folder: put back the folders marked already
        _settle([p for p in files if p.parent in saved], command, saved, since_ns=1 << 62)
        raise
    return saved


def _settle(files: Sequence[Path], command: str, saved: dict[Path, dict] | None, since_ns: int = 0) -> None:
    """Record the bytes of the written ``files`` (``saved`` None), or put back the entries
    ``saved`` held before a failed run, except for files that run did write (modified after
    ``since_ns``: e.g. the overlays written before the disk filled up)."""
    for folder, group in _by_folder(files).items():
        if not folder.is_dir():
            continue
        with _registry(folder, group[0]) as reg:
            for p in group:
                if saved is not None and p.is_file() and p.stat().st_mtime_ns >= since_ns:
                    reg[p.name] = {"command": command, "sha256": [sha256_file(p)]}
                elif saved is not None:
                    old = saved.get(folder, {}).get(p.name)
                    if old is None:
                        reg.pop(p.name, None)
                    else:
                        reg[p.name] = old
                elif p.is_file():
                    reg[p.name] = {"command": command, "sha256": [sha256_file(p)]}
                else:
                    reg.pop(p.name, None)


@contextlib.contextmanager
def guard_outputs(command: str, outputs: Sequence[str | os.PathLike] = (), files: Sequence[str | os.PathLike] = (),
                  input_files: Iterable = (), input_dirs: Iterable = (), force: bool = False,
                  lock: bool = True) -> Iterator[None]:
    """Check and lock the outputs of one run of ``command`` (``"bestie-labels evaluate"``).

    Args:
        outputs: the paths the user named (files or folders): locked, and checked against the
            inputs.
        files: every file the run may write that is recognised through the registry (JSON,
            PNG and text outputs, the files of an output folder): an existing one not written by
            ``command`` is refused unless ``force``; they are recorded as the command's own when
            the run succeeds.
        input_files, input_dirs: what the run reads.
        force: replace existing files not written by ``command`` (never an input).
        lock: take the output locks (False on the non-zero ranks of a distributed run).

    Raises:
        BestieError: an output that is an input, a foreign existing file, a locked output.
    """
    files_p = [Path(os.path.abspath(f)) for f in files]
    outputs = [o for o in outputs if o is not None]
    input_files, input_dirs = list(input_files), list(input_dirs)
    check_not_inputs([*outputs, *files_p], input_files, input_dirs)
    created = _missing_folders([*files_p, *(Path(os.path.abspath(o)) for o in outputs)])
    locks: list[OutputLock] = []
    try:
        if lock:
            for o in sorted({os.path.abspath(o) for o in outputs}):
                locks.append(OutputLock(o).acquire())
        _refuse_foreign(files_p, command, force)
        # file systems stamp with a coarse clock (a jiffy behind time_ns): a margin, so that a
        # file this run wrote is not taken for an older one
        since_ns = time.time_ns() - 50_000_000
        saved = _mark(files_p, command) if files_p else {}
        try:
            yield
        except BaseException:  # Ctrl-C too: record what this run did write, so a rerun resumes
            _settle(files_p, command, saved, since_ns)
            raise
        _settle(files_p, command, None)
        created = []
    finally:
        for lk in reversed(locks):
            lk.release()
        for d in created:  # a failed run: remove the (empty) folders it made, deepest first
            with contextlib.suppress(OSError):
                d.rmdir()
