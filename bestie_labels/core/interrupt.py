"""Ctrl-C, in one place: the SIGINT handlers and the flag the writers poll.

Two writers stop cleanly on Ctrl-C, and both poll the flag held here:

- the per-image stages (:class:`~bestie_labels.store.file.StoreWriter` calls :func:`check` before
  each image). Under :func:`stop_now` (what the CLI installs) Ctrl-C raises KeyboardInterrupt at
  once and also sets the flag: Python prints and then *drops* an exception raised while it runs
  a weakref callback or a ``__del__`` (h5py closes files that way), so there the handler only
  sets the flag and the stage stops at its next image instead of losing the Ctrl-C;
- the trainers, under :func:`finish_step`: the first Ctrl-C only sets the flag, which the
  training loop polls (``poll.requested``) to write its checkpoint and stop; a second Ctrl-C
  raises at once.

Both context managers install their handler in the main thread only (elsewhere signals cannot be
handled and they do nothing but clear the flag) and restore the previous handler on exit.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

_STATE = {"requested": False}


def request(flag: bool = True) -> None:
    """Set (or clear, ``flag=False``) the interrupt request."""
    _STATE["requested"] = bool(flag)


def requested() -> bool:
    """Whether a Ctrl-C arrived (and was not cleared) since the handler was installed."""
    return _STATE["requested"]


def check() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was requested."""
    if _STATE["requested"]:
        raise KeyboardInterrupt


def _in_finaliser(frame) -> bool:
    """Whether ``frame`` runs inside a ``__del__`` or a weakref callback (an exception raised
    there is printed and dropped by Python)."""
    f, depth = frame, 0
    while f is not None and depth < 64:
        if f.f_code.co_name == "__del__" or f.f_code.co_filename.endswith(("weakref.py", "_weakrefset.py")):
            return True
        f, depth = f.f_back, depth + 1
    return False


def _raise_now(signum, frame) -> None:
    request(True)
    if not _in_finaliser(frame):
        raise KeyboardInterrupt


def _second_raises(signum, frame) -> None:
    if requested():
        raise KeyboardInterrupt
    request(True)


@contextmanager
def _handler(handler: Callable, enabled: bool = True) -> Iterator[None]:
    request(False)
    prev = None
    if enabled and threading.current_thread() is threading.main_thread():
        try:
            prev = signal.signal(signal.SIGINT, handler)
        except (ValueError, OSError):
            prev = None
    try:
        yield
    finally:
        request(False)
        if prev is not None:
            try:
                signal.signal(signal.SIGINT, prev)
            except (ValueError, OSError):
                pass


@contextmanager
def stop_now() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt at once (and sets the flag that the stage writers poll,
    for a Ctrl-C that lands inside a finaliser). The CLI wraps every command in it."""
    with _handler(_raise_now):
        yield


class Poll:
    """What :func:`finish_step` yields: ``poll.requested`` is True once Ctrl-C was pressed."""

    @property
    def requested(self) -> bool:
        return requested()


@contextmanager
def finish_step(enabled: bool = True) -> Iterator[Poll]:
    """The first Ctrl-C only sets the flag (the loop polls ``poll.requested``, finishes its step,
    saves and stops); a second one raises KeyboardInterrupt at once. ``enabled=False`` (e.g. a
    multi-process run, where each rank gets the signal) leaves the current handler in place."""
    with _handler(_second_raises, enabled):
        yield Poll()
