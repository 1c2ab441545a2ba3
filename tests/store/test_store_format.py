"""Store format 2: the codec of one array, the documented HDF5 layout, old and damaged files."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from bestie_labels.core.errors import BestieError, StaleOutputError
from bestie_labels.store.file import Store, StoreWriter
from bestie_labels.store.codec import DEFLATE_MIN_BYTES, Encoded, decode, encode


# ------------------------------------------------------------------------------------------
# codec
# ------------------------------------------------------------------------------------------
def test_small_arrays_are_raw_bytes():
    e = encode(np.array([[1, 2], [3, 4]], "<i4"))
    assert (e.shape, e.dtype, e.planes) == ((2, 2), np.dtype("<i4"), 0)
    assert e.data == bytes([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0])


def test_large_arrays_are_the_deflated_byte_shuffle():
    a = np.arange(2048, dtype="<u2")  # 4096 bytes: the threshold
    e = encode(a)
    assert e.planes == 2 and e.shape == (2048,)
    raw = np.frombuffer(zlib.decompress(e.data), np.uint8)
    # byte 0 of every element first, then byte 1: HDF5's shuffle filter
    np.testing.assert_array_equal(raw[:2048], np.arange(2048) % 256)
    np.testing.assert_array_equal(raw[2048:], np.arange(2048) // 256)
    assert encode(np.arange(DEFLATE_MIN_BYTES - 1, dtype=np.uint8)).planes == 0
    assert encode(np.arange(DEFLATE_MIN_BYTES, dtype=np.uint8)).planes == 1


def test_trailing_zero_byte_planes_are_left_out():
    """A uint16 map with values below 256 keeps only its low bytes; a value of 256 needs both."""
    a = np.tile(np.array([0, 1, 255], "<u2"), 2000)
    e = encode(a)
    assert e.planes == 1 and zlib.decompress(e.data) == a.astype(np.uint8).tobytes()
    np.testing.assert_array_equal(decode(e), a)
    a[5] = 256
    assert encode(a).planes == 2
    big = np.tile(np.array([0, 1], ">u2"), 3000)  # big-endian: byte 0 is the high byte, 0 here
    assert encode(big).planes == 2
    np.testing.assert_array_equal(decode(encode(big)), big)
    zeros = np.zeros(3000, np.float32)
    assert encode(zeros).planes == 1 and decode(encode(zeros)).dtype == np.float32


@pytest.mark.parametrize("a", [
    np.zeros((0, 4), np.float32), np.array([True, False, True]), np.arange(-5, 5, dtype=np.int8),
    np.random.default_rng(0).integers(0, 9, (50, 60)).astype(">u2"),
    np.random.default_rng(1).normal(size=(3, 40, 20)).astype(np.float64),
    np.random.default_rng(2).integers(0, 3, (375, 500)).astype(np.uint8),
])
def test_roundtrip_keeps_values_shape_and_dtype(a):
    b = decode(encode(a))
    assert b.dtype == a.dtype and b.shape == a.shape and b.flags.writeable
    np.testing.assert_array_equal(b, a)


def test_a_zero_top_plane_keeps_the_planes_below_it():
    """int32 256: bytes 0 and 2-3 are zero, byte 1 is not; two planes are kept, not one."""
    a = np.full(2000, 256, "<i4")
    e = encode(a)
    assert e.planes == 2
    np.testing.assert_array_equal(decode(e), a)


def test_encode_refuses_scalars_and_non_numbers():
    with pytest.raises(ValueError, match="rank 1 or more"):
        encode(np.float32(3))
    with pytest.raises(ValueError, match="numbers"):
        encode(np.array(["a", "b"]))


def test_decode_refuses_damaged_bytes():
    e = encode(np.arange(4096, dtype=np.uint16))
    with pytest.raises(ValueError, match="inflate"):
        decode(Encoded(e.shape, e.dtype, 2, e.data[:-9] + b"123456789"))
    with pytest.raises(ValueError, match="bytes for 4 elements"):
        decode(Encoded((4,), np.dtype(np.int32), 0, b"\0" * 12))
    with pytest.raises(ValueError, match="3 byte planes for elements of 2 bytes"):
        decode(Encoded(e.shape, e.dtype, 3, e.data))


# ------------------------------------------------------------------------------------------
# the file
# ------------------------------------------------------------------------------------------
IDS = ["a", "b", "c"]
ARRAYS = {
    "a": {"mask": np.full((40, 60), 2, np.uint16), "pts": np.array([[1.5, 2.5]], np.float32)},
    "b": {"mask": np.arange(6, dtype=np.uint16).reshape(2, 3)},  # no "pts": absent
    "c": {"mask": np.zeros((1, 1), np.uint16), "pts": np.zeros((0, 2), np.float32)},
}


def _store(path, part_size=64, arrays=ARRAYS):
    w = StoreWriter(path, "toy", {"o": 1}, {"data": "x"}, IDS, part_size=part_size)
    for i in w.pending:
        w.add(i, arrays[i], {"warn": 2} if i == "b" else None)
    return w.finish()


def _read_as_documented(path, name, i):
    """An outside reader's decoding, from the layout in bestie_labels/store/h5io.py and h5py only."""
    with h5py.File(path, "r") as h5:
        g = h5[f"arrays/{name}"]
        lo, hi = g["offset"][i], g["offset"][i + 1]
        shape, dtype = tuple(g["shape"][i]), np.dtype(g.attrs["dtype"])
        data, k = g["bytes"][lo:hi].tobytes(), int(g["planes"][i])
        if k:  # the first k planes of the byte shuffle, deflated; the others are 0
            planes = np.frombuffer(zlib.decompress(data), np.uint8).reshape(k, -1)
            missing = np.zeros((dtype.itemsize - k, planes.shape[1]), np.uint8)
            data = np.concatenate([planes, missing]).T.tobytes()
        return np.frombuffer(data, dtype).reshape(shape)


def test_layout_is_as_documented(tmp_path):
    p = _store(tmp_path / "s.h5")
    with h5py.File(p, "r") as h5:
        assert int(h5.attrs["format"]) == 2
        assert sorted(h5["arrays"]) == ["mask", "pts"]
        np.testing.assert_array_equal(h5["arrays/pts/shape"][()], [[1, 2], [-1, -1], [0, 2]])
        np.testing.assert_array_equal(h5["arrays/pts/offset"][()], [0, 8, 8, 8])
        np.testing.assert_array_equal(h5["arrays/mask/planes"][()], [1, 0, 0])  # 4,800 bytes (values < 256), 12, 2
        np.testing.assert_array_equal(h5["attrs/warn"][()], [0, 2, 0])
        # every image costs no HDF5 object of its own
        assert sorted(h5) == ["arrays", "attrs", "meta"]
    for i, iid in enumerate(IDS):
        for name, a in ARRAYS[iid].items():
            np.testing.assert_array_equal(_read_as_documented(p, name, i), a)


def test_deflated_arrays_read_back_by_an_outside_reader(tmp_path):
    big = {i: {"mask": np.random.default_rng(k).integers(0, 300, (70, 90)).astype(np.uint16)}
           for k, i in enumerate(IDS)}
    p = _store(tmp_path / "s.h5", arrays=big)
    with h5py.File(p, "r") as h5:
        np.testing.assert_array_equal(h5["arrays/mask/planes"][()], [2, 2, 2])
    for i, iid in enumerate(IDS):
        np.testing.assert_array_equal(_read_as_documented(p, "mask", i), big[iid]["mask"])


def test_store_reads_absent_arrays_attrs_and_shapes(tmp_path):
    with Store(_store(tmp_path / "s.h5")) as s:
        assert sorted(s.read("b")) == ["mask"]
        np.testing.assert_array_equal(s.read("a")["pts"], ARRAYS["a"]["pts"])
        assert s.shape("c", "pts") == (0, 2)
        assert s.image_attrs("b") == {"warn": 2} and s.image_attrs("a") == {}
        assert s.attr_totals() == {"warn": 2}
        with pytest.raises(BestieError, match="image b: no 'pts' array"):
            s.shape("b", "pts")
        with pytest.raises(BestieError, match="image z is not in this store"):
            s.read("z")


def test_large_columns_are_read_image_by_image(tmp_path, monkeypatch):
    """Columns over IN_MEMORY_BYTES are not read whole: the same arrays, read image by image."""
    from bestie_labels.store import h5io

    p = _store(tmp_path / "s.h5")
    monkeypatch.setattr(h5io, "IN_MEMORY_BYTES", 0)
    with Store(p) as s:
        for iid in IDS:
            got = s.read(iid)
            assert sorted(got) == sorted(ARRAYS[iid])
            for k, a in ARRAYS[iid].items():
                np.testing.assert_array_equal(got[k], a)
        assert s._bytes._whole == {}


def test_parts_and_final_are_byte_identical_however_split(tmp_path):
    a, b = _store(tmp_path / "a.h5", part_size=1), _store(tmp_path / "b.h5", part_size=64)
    assert a.read_bytes() == b.read_bytes()


def test_a_name_with_two_dtypes_is_a_programming_error(tmp_path):
    arrays = {**ARRAYS, "c": {"mask": np.zeros((1, 1), np.uint8)}}
    with pytest.raises(ValueError, match="array .mask. is uint8 of rank 2 in image c but uint16 of rank 2 before"):
        _store(tmp_path / "s.h5", part_size=64, arrays=arrays)


def _format_1_store(path):
    """A store as bestie wrote it before format 2: one HDF5 group per image."""
    with h5py.File(path, "w") as h5:
        h5.attrs.update(stage="toy", format=1, version="0.1", options="{}", inputs="{}", shard="")
        h5["meta/image_ids"] = np.array([b"a"], dtype=object)
        h5["meta/split_ids"] = np.array([b"a"], dtype=object)
        h5["images/a/mask"] = np.zeros((2, 2), np.uint8)


def test_format_1_stores_are_refused_in_one_line(tmp_path):
    p = tmp_path / "old.h5"
    _format_1_store(p)
    with pytest.raises(BestieError) as e:
        Store(p)
    assert str(e.value) == (f"{p}: store format 1 is not supported (expected 2): it was written by another "
                            "version of bestie (0.1); rerun the stage that made it")
    before = p.read_bytes()
    with pytest.raises(StaleOutputError, match="exists and is a store of another format; rerun with --force"):
        StoreWriter(p, "toy", {}, {}, ["a"])
    assert p.read_bytes() == before and sorted(tmp_path.iterdir()) == [p]


def _replace(h5, path, data):
    del h5[path]
    h5[path] = data


DAMAGES = {
    "bytes shorter than the offsets": lambda h5: h5["arrays/mask/offset"].__setitem__(3, 10 ** 6),
    "first offset not 0": lambda h5: h5["arrays/mask/offset"].__setitem__(0, 1),
    "offsets decreasing": lambda h5: h5["arrays/mask/offset"].__setitem__(1, h5["arrays/mask/offset"][2] + 1),
    "offsets of another length": lambda h5: _replace(h5, "arrays/mask/offset", h5["arrays/mask/offset"][:3]),
    "a shape row missing": lambda h5: _replace(h5, "arrays/mask/shape", h5["arrays/mask/shape"][:2]),
    "shapes not a table": lambda h5: _replace(h5, "arrays/mask/shape", h5["arrays/mask/shape"][()].reshape(-1)),
    "a planes entry too many": lambda h5: _replace(h5, "arrays/mask/planes", np.zeros(4, np.uint8)),
    "not a number dtype": lambda h5: h5["arrays/mask"].attrs.__setitem__("dtype", "<U2"),
    "an attribute of another length": lambda h5: _replace(h5, "attrs/warn", np.zeros(2, np.int64)),
    "no dtype": lambda h5: h5["arrays/pts"].attrs.__delitem__("dtype"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_index_is_refused(tmp_path, damage):
    p = _store(tmp_path / "s.h5")
    with h5py.File(p, "r+") as h5:
        DAMAGES[damage](h5)
    with pytest.raises(BestieError) as e:
        Store(p)
    assert str(e.value) == f"{p}: store is damaged (unreadable options, inputs, image list or index)"


def test_layouts_of_two_parts_with_other_dtypes_do_not_join():
    from bestie_labels.store.h5io import concat_layouts, layout_of

    a = layout_of(["a"], [{"m": encode(np.zeros(3, np.uint16))}], [None])
    b = layout_of(["b"], [{"m": encode(np.zeros((3, 1), np.uint16))}], [None])
    c = layout_of(["c"], [{"m": encode(np.zeros(3, np.uint8))}], [{"w": 4}])
    with pytest.raises(ValueError) as e:
        concat_layouts([(a, 0), (b, 0)])
    assert str(e.value) == "array 'm' is uint16 of rank 2 in another part but uint16 of rank 1 before"
    with pytest.raises(ValueError, match="array 'm' is uint8 of rank 1 in another part but uint16 of rank 1"):
        concat_layouts([(a, 0), (c, 0)])
    both = concat_layouts([(c, 0), (c, 0)])
    np.testing.assert_array_equal(both.attrs["w"], [4, 4])
    np.testing.assert_array_equal(both.offsets["m"], [0, 3, 6])
    # rows taken out of order: the index follows the rows, not the source's order
    two = layout_of(["x", "y"], [{"m": encode(np.zeros(2, np.uint8))}, {"m": encode(np.zeros((5,), np.uint8))}],
                    [None, {"w": 1}])
    back = concat_layouts([(two, 1), (two, 0)])
    assert back.image_ids == ["y", "x"]
    np.testing.assert_array_equal(back.offsets["m"], [0, 5, 7])
    np.testing.assert_array_equal(back.shapes["m"], [[5], [2]])
    np.testing.assert_array_equal(back.attrs["w"], [1, 0])


def test_a_part_is_written_once_its_first_image_has_waited(tmp_path, monkeypatch):
    """Parts hold ``part_size`` images, or fewer once PART_SECONDS have passed since the first
    (a slow stage loses at most that much work to a SIGKILL)."""
    from bestie_labels.store import file as store

    w = StoreWriter(tmp_path / "s.h5", "toy", {"o": 1}, {"data": "x"}, IDS, part_size=64)
    w.add("a", ARRAYS["a"])
    assert not list(w.parts_dir.glob("part-*.h5"))  # 1 image of 64, no time passed
    monkeypatch.setattr(store, "PART_SECONDS", -1.0)
    w.add("b", ARRAYS["b"])
    assert len(list(w.parts_dir.glob("part-*.h5"))) == 1 and w.n_done == 2


def test_no_object_records_the_time_it_was_written(tmp_path):
    """HDF5 can stamp each object with its creation time (seconds); a store's bytes would then
    depend on when it was written, and two runs could never be byte-identical."""
    import time

    a = _store(tmp_path / "a.h5")
    time.sleep(1.1)
    b = _store(tmp_path / "b.h5")
    assert a.read_bytes() == b.read_bytes()
