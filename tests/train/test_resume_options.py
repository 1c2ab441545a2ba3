"""check_resume: which option changes a resume refuses."""

from pathlib import Path

import pytest

from bestie_labels.core.errors import BestieError
from bestie_train.fit_options import TRAJECTORY_KEYS
from bestie_train.run_state import check_resume


def _opts(**kw):
    o = {k: None for k in TRAJECTORY_KEYS}
    o.update({"iters": 10, "point_offsets": "centroid", **kw})
    return o


def test_same_options_resume_and_other_ones_are_refused():
    ck = {"options": _opts(), "inputs": {"a": 1}, "class_names": ["x"]}
    check_resume(ck, _opts(iters=20), {"a": 1}, ["x"], Path("last.pt"))  # iters may grow
    with pytest.raises(BestieError, match="point_offsets: 'centroid' -> 'point'"):
        check_resume(ck, _opts(point_offsets="point"), {"a": 1}, ["x"], Path("last.pt"))
    with pytest.raises(BestieError, match="it may only grow"):
        check_resume(ck, _opts(iters=5), {"a": 1}, ["x"], Path("last.pt"))


def test_a_run_from_before_point_offsets_resumes_only_with_point():
    old = _opts()
    del old["point_offsets"]
    ck = {"options": old, "inputs": {}, "class_names": ["x"]}
    check_resume(ck, _opts(point_offsets="point"), {}, ["x"], Path("last.pt"))
    with pytest.raises(BestieError, match="point_offsets: 'point' -> 'centroid'"):
        check_resume(ck, _opts(), {}, ["x"], Path("last.pt"))
