import filecmp

import numpy as np
import pytest

from bestie_labels.datasets.ids import coco_image_ids
from bestie_labels.core.errors import BestieError, StaleOutputError
from bestie_labels.core.fileio import atomic_path, read_index_png, write_index_png
from bestie_labels.store.file import Store, StoreWriter
from bestie_labels.store.merge import merge_stores

IDS = [f"im{i}" for i in range(7)]


def _write(path, part_size=64, shard=None, options=None, stage="toy", inputs=None, ids=IDS):
    w = StoreWriter(path, stage, options or {"a": 1}, inputs or {"data": "x"}, ids, shard=shard,
                    part_size=part_size)
    for i in w.pending:
        w.add(i, {"m": np.full((3, 4), int(i[2:]), np.uint8), "v": np.arange(int(i[2:]))})
    return w.finish()


def test_store_roundtrip_and_byte_identity(tmp_path):
    a = _write(tmp_path / "a.h5", part_size=2)
    b = _write(tmp_path / "b.h5", part_size=64)
    assert filecmp.cmp(a, b, shallow=False)
    with Store(a, stage="toy") as s:
        assert s.image_ids == IDS
        assert s.options == {"a": 1}
        np.testing.assert_array_equal(s.read("im3")["m"], np.full((3, 4), 3, np.uint8))
        assert s.read("im0")["v"].shape == (0,)


def test_store_refuses_other_options_and_wrong_stage(tmp_path):
    a = _write(tmp_path / "a.h5")
    with pytest.raises(StaleOutputError, match="options.a: 1 -> 2"):
        StoreWriter(a, "toy", {"a": 2}, {"data": "x"}, IDS)
    assert StoreWriter(a, "toy", {"a": 1}, {"data": "x"}, IDS).is_current
    with pytest.raises(BestieError, match="expected a 'cues' store"):
        Store(a, stage="cues")


def test_store_resumes_from_parts(tmp_path):
    path = tmp_path / "r.h5"
    w = StoreWriter(path, "toy", {"a": 1}, {"data": "x"}, IDS, part_size=2)
    for i in w.pending[:5]:
        w.add(i, {"m": np.full((3, 4), int(i[2:]), np.uint8), "v": np.arange(int(i[2:]))})
    del w  # interrupted: 4 images flushed in two parts, 1 lost in the buffer
    w2 = StoreWriter(path, "toy", {"a": 1}, {"data": "x"}, IDS, part_size=2)
    assert w2.pending == IDS[4:]
    for i in w2.pending:
        w2.add(i, {"m": np.full((3, 4), int(i[2:]), np.uint8), "v": np.arange(int(i[2:]))})
    w2.finish()
    assert filecmp.cmp(path, _write(tmp_path / "u.h5"), shallow=False)


def test_merge_shards(tmp_path):
    full = _write(tmp_path / "full.h5")
    parts = [_write(tmp_path / f"s{i}.h5", shard=(i, 3)) for i in range(3)]
    merged = merge_stores(parts, tmp_path / "m.h5")
    assert filecmp.cmp(full, merged, shallow=False)
    with pytest.raises(BestieError, match="in no part"):
        merge_stores(parts[:2], tmp_path / "m2.h5")
    with pytest.raises(BestieError, match="overlapping"):
        merge_stores([parts[0], parts[0], parts[1], parts[2]], tmp_path / "m3.h5")


@pytest.mark.parametrize("what, change", [("is a other store but .* is a \\w+ store", {"stage": "other"}),
                                          ("was made with other options than", {"options": {"a": 2}}),
                                          ("was made from other inputs than", {"inputs": {"data": "y"}}),
                                          ("holds shards of another split than", {"ids": IDS + ["im7"]})])
def test_merge_refuses_shards_that_differ(tmp_path, what, change):
    # Shard 1 of 3 from another run (other stage, options, inputs or image list) must not be
    # joined to shards 0 and 2, even though together they cover the split.
    parts = [_write(tmp_path / f"s{i}.h5", shard=(i, 3), **(change if i == 1 else {})) for i in range(3)]
    with pytest.raises(BestieError, match=what):  # said in words (issue 23: not "stage differ")
        merge_stores(parts, tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("new")
            raise RuntimeError
    assert p.read_text() == "old"
    assert list(tmp_path.iterdir()) == [p]


def test_index_png_roundtrip_and_size_check(tmp_path):
    a = np.array([[0, 1, 255], [3, 20, 0]], np.uint8)
    write_index_png(tmp_path / "m.png", a)
    np.testing.assert_array_equal(read_index_png(tmp_path / "m.png", (2, 3)), a)
    with pytest.raises(BestieError, match="mask is 3x2 but the image is 4x2"):
        read_index_png(tmp_path / "m.png", (2, 4))


def test_coco_image_ids_rule():
    assert coco_image_ids(["2007_000032", "2008_001234"]) == [2007000032, 2008001234]
    assert coco_image_ids(["b", "a", "2007_000032"]) == [3, 2, 1]


def test_merge_names_the_file_in_each_refusal_and_keeps_attrs(tmp_path):
    parts = [_write(tmp_path / f"s{i}.h5", shard=(i, 3)) for i in range(3)]
    with pytest.raises(BestieError) as e:
        merge_stores([], tmp_path / "m0.h5")
    assert str(e.value) == "no parts to merge"
    other = _write(tmp_path / "o1.h5", shard=(1, 3), options={"a": 2})
    with pytest.raises(BestieError) as e:
        merge_stores([parts[0], other, parts[2]], tmp_path / "m1.h5")
    assert str(e.value) == f"{other}: was made with other options than {parts[0]}"
    with pytest.raises(BestieError) as e:
        merge_stores([parts[0], parts[1], parts[2], parts[1]], tmp_path / "m2.h5")
    assert str(e.value) == f"{parts[1]}: image im1 is also in {parts[1]} (overlapping shards)"
    with pytest.raises(BestieError) as e:
        merge_stores([parts[0], parts[2]], tmp_path / "m3.h5")
    assert str(e.value) == f"{tmp_path / 'm3.h5'}: 2 images of the split are in no part (first: im1)"
    # per-image attributes (the stages' warning counts) survive the merge
    shards = []
    for i in range(2):
        w = StoreWriter(tmp_path / f"w{i}.h5", "toy", {"a": 3}, {"data": "x"}, IDS, shard=(i, 2))
        for k in w.pending:
            w.add(k, {"m": np.zeros((2, 2), np.uint8)}, {"no_instance": 1} if k == "im2" else None)
        shards.append(w.finish())
    merged = merge_stores(shards, tmp_path / "mw.h5")
    with Store(merged) as s:
        assert s.image_attrs("im2") == {"no_instance": 1} and s.image_attrs("im3") == {}
    # an existing merged store of other content is refused without force, replaced with it
    with pytest.raises(StaleOutputError):
        merge_stores(parts, merged)
    assert merge_stores(parts, merged, force=True) == merged
