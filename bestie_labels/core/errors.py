"""User-facing errors.

Anything a user can cause (a missing file, a malformed mask, a store made with other options)
raises :class:`BestieError`. The CLI prints its message as one line and exits non-zero without a
traceback; programming errors still raise ordinary exceptions with their traceback.
"""

from __future__ import annotations

import os


class BestieError(Exception):
    """A user error: ``str(err)`` is one line naming the file and the problem."""

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class NoSpaceError(BestieError):
    """The disk is full: finished work is kept, so that a rerun with more space resumes."""


class StoreFormatError(BestieError):
    """A store written in another store format (another version of bestie): rerun its stage."""


class StaleOutputError(BestieError):
    """An existing output was made with other options or inputs (rerun with --force)."""


def one_line(e: BestieError) -> BestieError:
    """``e`` with a one-line message. A BestieError re-raised by a worker process (a DataLoader
    worker) carries the worker's traceback in its message; keep the original message, its last
    line, without the exception's class name."""
    msg = str(e).strip()
    if "\n" not in msg:
        return e
    last = msg.splitlines()[-1]
    for prefix in ("bestie_labels.core.errors.BestieError: ", "BestieError: "):
        if last.startswith(prefix):
            last = last[len(prefix):]
    return BestieError(last)
