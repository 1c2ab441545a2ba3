"""The fixtures most reliability matrices start from (a module may define its own ``good``)."""

import pytest

from badinput_helpers import make_good_inputs, work_copy


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A tiny tree and its good train stores, made once per module (:func:`make_good_inputs`)."""
    base = tmp_path_factory.mktemp("good")
    make_good_inputs(base)
    return base


@pytest.fixture
def work(good, tmp_path):
    """A fresh copy of ``good`` for one test to damage (:func:`work_copy`)."""
    return work_copy(good, tmp_path)
