"""Options and error handling shared by every command (in the spirit of rasterio's ``rio``).

Commands only parse options and call library functions. :func:`command` wraps a command body
so that a :class:`~bestie_labels.core.errors.BestieError` prints one line (``Error: FILE: problem``)
and exits 1, and Ctrl-C exits 130 saying that a rerun resumes (the SIGINT handling itself is
:mod:`bestie_labels.core.interrupt`).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import warnings

import click

from bestie_labels.core import interrupt
from bestie_labels.core.errors import BestieError


_python_show_warning = warnings.showwarning


def _close_progress_bars() -> None:
    """Close the tqdm bars an exception left open, so that the message starts on its own line
    (a bar left half drawn on stderr would otherwise swallow the start of the error line). In a
    log file (stderr not a terminal) a closed bar leaves its last line without a newline: end it."""
    std = sys.modules.get("tqdm.std")
    if std is None:
        return
    bars = sorted(list(getattr(std.tqdm, "_instances", ())), key=lambda b: -abs(getattr(b, "pos", 0)))
    drawn = False
    for bar in bars:
        try:
            drawn = drawn or not bar.disable
            bar.leave = False
            bar.close()
        except Exception:
            pass
    if drawn and not _stderr_is_tty():
        click.echo("", err=True)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


#: tqdm's minimum seconds between two redraws when stderr is a file (a log): one line per
#: update would flood it.
LOG_MININTERVAL = "30"


def _quiet_bars_in_logs() -> None:
    if not _stderr_is_tty():
        os.environ.setdefault("TQDM_MININTERVAL", LOG_MININTERVAL)


#: errno values that are the machine's state, not a bug: reported in one line, no traceback.
_SYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                  errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EEXIST, errno.ENOTDIR, errno.EISDIR,
                  errno.ENOTEMPTY, errno.ENAMETOOLONG}


def system_error(e: OSError) -> str | None:
    """One line for an OSError caused by the machine (disk full, read-only, permissions...),
    or None for any other OSError. h5py reports the errno only inside its message."""
    code = e.errno
    if code is None:
        m = re.search(r"errno = (\d+)", str(e))
        code = int(m.group(1)) if m else None
    if code not in _SYSTEM_ERRNOS:
        return None
    what = os.strerror(code)
    where = e.filename or ""
    hint = "; earlier outputs are intact and a rerun resumes" if code in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{where}: {what}{hint}" if where else f"{what}{hint}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's UserWarning (a skipped image, dropped polygons) as one ``Warning: ...`` line;
    other categories keep Python's format (they are for developers, with their source line)."""
    if issubclass(category, UserWarning) and not issubclass(category, DeprecationWarning):
        std = sys.modules.get("tqdm.std")
        if std is not None and getattr(std.tqdm, "_instances", None):
            std.tqdm.write(f"Warning: {message}", file=sys.stderr)  # above the open bars, not through them
        else:
            click.echo(f"Warning: {message}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


def command(fn):
    """Turn user errors and interrupts into one line and a non-zero exit, and user warnings
    into one line each."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _quiet_bars_in_logs()
        warnings.showwarning = _show_warning
        try:
            with interrupt.stop_now():
                return fn(*args, **kwargs)
        except BestieError as e:
            _close_progress_bars()
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            _close_progress_bars()
            click.echo("Interrupted: finished work is kept; rerun the same command to resume (bestie-train fit: add --resume).", err=True)
            sys.exit(130)
        except OSError as e:
            msg = system_error(e)
            if msg is None:
                raise
            _close_progress_bars()
            click.echo(f"Error: {msg}", err=True)
            sys.exit(1)
        except RuntimeError as e:  # HDF5 reports a full disk as RuntimeError, its errno in the text
            from bestie_labels.core.fileio import _NO_SPACE

            if not any(s in str(e) for s in _NO_SPACE):
                raise
            _close_progress_bars()
            m = re.search(r"name = '([^']*)'", str(e))
            click.echo(f"Error: {m.group(1) + ': ' if m else ''}No space left on device; earlier outputs are "
                       "intact and a rerun resumes", err=True)
            sys.exit(1)

    return wrapper


def data_options(fn=None, *, split: str = "train"):
    """``--data PATH [--split NAME] [--data-format] [--images DIR] [--labels FILE]``.

    Use as ``@data_options`` or ``@data_options(split="val")`` for another default split.
    """
    if fn is None:
        return lambda f: data_options(f, split=split)
    opts = [
        click.option("--data", "data", required=True, type=click.Path(),
                     help="VOC root (has JPEGImages/), COCO instances JSON, or a folder with labels.csv."),
        click.option("--split", default=split, show_default=True, help="Split name (VOC: ImageSets/Segmentation/<split>.txt)."),
        click.option("--data-format", type=click.Choice(["voc", "coco", "folder"]), default=None,
                     help="Force the dataset kind instead of detecting it."),
        click.option("--images", type=click.Path(), default=None, help="COCO: image folder."),
        click.option("--labels", "labels_file", type=click.Path(), default=None,
                     help="Image-level labels in the BESTIE format ('name c1 c2 ...', 0-based), e.g. train_cls.txt."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def open_data(data, split, data_format, images, labels_file):
    """Open the dataset named by :func:`data_options`."""
    from bestie_labels.datasets import open_dataset

    return open_dataset(data, split=split, data_format=data_format, images=images, labels=labels_file)


def guard(command: str, outputs=(), files=(), inputs=(), input_dirs=(), dataset=None, force: bool = False):
    """The output guard of one run (:func:`bestie_labels.core.outputs.guard_outputs`): refuse an output
    that is an input or (unless ``force``) an existing file another command wrote, and lock
    ``outputs``. ``dataset``'s image, annotation and GT files count as inputs."""
    from bestie_labels.core.outputs import dataset_inputs, guard_outputs

    inputs, input_dirs = [i for i in inputs if i], [d for d in input_dirs if d]
    if dataset is not None:
        f, d = dataset_inputs(dataset)
        inputs += f
        input_dirs += d
    # torchrun: every rank runs the command; rank 0 alone writes, so it alone holds the locks.
    lock = os.environ.get("RANK", "0") in ("", "0")
    return guard_outputs(command, outputs=[o for o in outputs if o], files=[f for f in files if f],
                         input_files=inputs, input_dirs=input_dirs, force=force, lock=lock)


def replace_force(store: str, stage: str, force: bool, replace_own: bool) -> bool:
    """The ``force`` a store-writing run gets: ``--force`` as given; with ``--replace-own``, True
    when what exists at ``store`` (the file, the ``.parts/`` of an unfinished run) is a store of
    ``stage`` (a run of this stage with other options or inputs), False when it is anything else
    (a user's file, another stage's store), which the store writer then refuses."""
    if force or not replace_own:
        return force
    from pathlib import Path

    from bestie_labels.core.errors import BestieError
    from bestie_labels.core.fileio import read_json
    from bestie_labels.store.file import Store

    path = Path(store)
    parts = path.with_name(path.name + ".parts") / "header.json"
    try:
        if path.exists():
            with Store(path, stage=stage):
                pass
        return not parts.exists() or read_json(parts).get("stage") == stage
    except (BestieError, AttributeError):
        return False


def check_device(device: str) -> None:
    """``--device cuda`` on a machine without CUDA is one line, before any work."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BestieError("--device cuda but CUDA is not available (use --device cpu)")


def sample_files(folder, image_ids, n: int, suffix: str = ".png") -> list:
    """``folder/<id><suffix>`` of the ``n`` images spread over the split that figure writers draw."""
    if folder is None:
        return []
    from pathlib import Path

    from bestie_labels.stages import overlay_sample

    return [Path(folder) / f"{i}{suffix}" for i in overlay_sample(list(image_ids), n)]


def parse_shard(ctx, param, value):
    if value is None:
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter("expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise click.BadParameter("need 0 <= I < N")
    return (i, n)


workers_option = click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
                              help="Parallel worker processes for per-image work.")
seed_option = click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
force_option = click.option("--force", is_flag=True,
                            help="Replace an output made with other options or inputs, or by another command (never an input).")
replace_own_option = click.option(
    "--replace-own", is_flag=True,
    help="Replace an output made with other options or inputs only if this command wrote it (as its "
         "folder's output registry records); a file anything else wrote is refused. `make voc-pipeline` uses it.")
shard_option = click.option("--shard", default=None, callback=parse_shard, metavar="I/N",
                            help="Process only images I, I+N, I+2N, ... and write a part for `merge`.")
device_option = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)


class LazyGroup(click.Group):
    """A group whose subcommands live in ``cli/<prefix>_<name>.py`` as ``command``.

    Modules are imported only when a command is used or help is shown, so that a command that
    needs torch does not slow down the others. ``bestie-labels transfer`` is ``cli/labels_transfer.py``,
    ``bestie-train fit`` is ``cli/train_fit.py``; underscores in ``<name>`` become dashes.
    """

    def __init__(self, *args, prefix: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.prefix = prefix

    def _modules(self) -> dict[str, str]:
        import pathlib

        here = pathlib.Path(__file__).parent
        return {p.stem[len(self.prefix) + 1:].replace("_", "-"): f"{__package__}.{p.stem}"
                for p in here.glob(f"{self.prefix}_*.py")}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._modules()))

    def get_command(self, ctx, name):
        mods = self._modules()
        if name in mods:
            import importlib

            return importlib.import_module(mods[name]).command
        return super().get_command(ctx, name)
