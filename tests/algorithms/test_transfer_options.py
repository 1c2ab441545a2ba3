import pytest

from bestie_labels.algorithms.transfer_options import TransferOptions
from bestie_labels.core.errors import BestieError


def test_recorded_options_read_back():
    o = TransferOptions(min_area=7, connectivity=4, center="centroid", cueless="keep", multi_cue="split")
    rec = o.recorded()
    assert rec == {"from_gt": False, "min_area": 7, "connectivity": 4, "center": "centroid", "cueless": "keep",
                   "multi_cue": "split"}
    assert TransferOptions.from_store(rec, "p.h5") == o
    assert o.keywords() == {k: v for k, v in rec.items() if k != "from_gt"}


def test_store_without_the_new_keys_was_made_with_drop():
    old = {"from_gt": False, "min_area": 50, "connectivity": 8, "center": "point"}
    o = TransferOptions.from_store(old, "p.h5")
    assert (o.cueless, o.multi_cue) == ("drop", "drop")


def test_bad_modes_are_user_errors():
    with pytest.raises(BestieError, match="cueless must be drop or keep"):
        TransferOptions(cueless="yes")
    with pytest.raises(BestieError, match="multi_cue must be auto, drop or split"):
        TransferOptions(multi_cue="yes")
    with pytest.raises(BestieError, match="no transfer options"):
        TransferOptions.from_store({"from_gt": False, "min_area": 50, "connectivity": 8, "center": "point",
                                    "cueless": "sometimes"}, "p.h5")


def test_auto_modes_follow_the_kind_of_cues():
    o = TransferOptions()
    assert (o.cueless, o.multi_cue, o.center) == ("drop", "auto", "auto")
    maps = o.resolved(point_cues=False)
    assert (maps.cueless, maps.multi_cue, maps.center) == ("drop", "split", "centroid")
    pts = o.resolved(point_cues=True)
    assert (pts.cueless, pts.multi_cue, pts.center) == ("drop", "drop", "point")
    fixed = TransferOptions(cueless="keep", multi_cue="drop").resolved(point_cues=False)
    assert (fixed.cueless, fixed.multi_cue) == ("keep", "drop")
