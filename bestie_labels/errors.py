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


class StaleOutputError(BestieError):
    """An existing output was made with other options or inputs (rerun with --force)."""
