"""Ctrl-C handling (bestie_labels/core/interrupt.py): the CLI's stop-now handler, the trainers'
finish-the-step handler, the flag both poll, and one-line worker errors."""

import signal
import sys

import pytest

from bestie_labels.core import interrupt
from bestie_labels.core.errors import BestieError, one_line


def _ctrl_c():
    signal.raise_signal(signal.SIGINT)
    sum(range(100))  # the handler runs at the next bytecode boundary


def test_stop_now_raises_and_restores_the_handler():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with interrupt.stop_now():
            assert not interrupt.requested()
            _ctrl_c()
    assert signal.getsignal(signal.SIGINT) is before
    assert not interrupt.requested()  # cleared on exit: a later command starts clean


def test_ctrl_c_inside_del_is_kept_as_the_flag(monkeypatch):
    """Python drops an exception raised in ``__del__``; the handler must only set the flag there,
    and the writers' next check raises."""
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))

    class Bomb:
        def __del__(self):
            _ctrl_c()

    with interrupt.stop_now():
        Bomb()
        assert interrupt.requested()
        assert dropped == []  # nothing was raised (and lost) inside __del__
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()


def test_finish_step_first_sets_flag_second_raises():
    before = signal.getsignal(signal.SIGINT)
    with interrupt.finish_step() as poll:
        assert not poll.requested
        _ctrl_c()
        assert poll.requested  # the loop finishes its step, saves and stops
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c()  # a second Ctrl-C stops at once
    assert signal.getsignal(signal.SIGINT) is before and not interrupt.requested()


def test_finish_step_disabled_keeps_the_current_handler():
    before = signal.getsignal(signal.SIGINT)
    with interrupt.finish_step(enabled=False) as poll:
        assert signal.getsignal(signal.SIGINT) is before
        interrupt.request(True)
        assert poll.requested
    assert not interrupt.requested()


def test_one_line_keeps_the_last_line_of_a_worker_traceback():
    e = BestieError("Caught BestieError in DataLoader worker process 0.\nTraceback (most recent call last):\n"
                    "  File \"x.py\", line 1\nbestie_labels.core.errors.BestieError: a.png: cannot read image")
    assert str(one_line(e)) == "a.png: cannot read image"
    plain = BestieError("bad", "f.txt")
    assert one_line(plain) is plain
