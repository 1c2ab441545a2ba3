"""Fuzz the readers of user files: points files, index PNG masks, COCO results (issue 7).

Hypothesis drives over 10,000 inputs in total (``TOTAL``) (``derandomize=True``: the same inputs
on every run, so CI is repeatable). A reader may only return a valid result or raise
:class:`BestieError`; anything else (IndexError, OverflowError, a pycocotools crash...) fails.
When a reader returns, its result is checked against its contract.

A :class:`BestieError` is accepted only on input that is actually damaged, so that a reader
refusing every file fails here. Whether an input is damaged is decided independently of the
reader under test: points files and COCO results by a small reference validator written from
the format's rules (``_points_expected``, ``_entry_ok``), which also gives the values a valid
input must be read as; PNGs, COCO instances files and VOC trees by the generator, which knows
whether it damaged the valid file it started from.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import random
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from badinput_helpers import build_png, png_chunks
from bestie_labels.datasets.base import Dataset, Record
from bestie_labels.core.errors import BestieError
from bestie_labels.evaluation.predictions import read_predictions
from bestie_labels.core.fileio import read_index_png
from bestie_labels.formats.points import read_points

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.filter_too_much])
#: Hypothesis examples per test. The ``*_batch`` tests draw a seed and read ``BATCH`` inputs
#: built from it with ``random.Random`` (cheap to generate, so that the whole file stays well
#: under a minute on 2 busy cores); the others build one input per example from Hypothesis
#: strategies (structure-aware, slower to generate).
N = {"points_text": 300, "points_bytes": 200, "points_batch": 350,
     "png_valid_mutated": 300, "png_bytes": 200, "png_chunks": 200, "png_batch": 300,
     "pred_entries": 200, "pred_json": 200, "pred_batch": 400, "coco_batch": 150, "voc_batch": 60}
BATCH = 8
#: Inputs read in all: examples, times BATCH for the batch tests.
TOTAL = sum(n * (BATCH if k.endswith("_batch") else 1) for k, n in N.items())


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="bestie-fuzz-") as d:
        yield d


def test_budget_is_at_least_10000():
    assert TOTAL >= 10_000


# ----------------------------------------------------------------------------------------
# points files
# ----------------------------------------------------------------------------------------
_NUM = st.one_of(
    st.integers(-5, 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.floats(-2, 70).map(lambda v: f"{v:.12f}"),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e400", "-1e400", "1e-400", "0x10", "1_0", "٣", "１",
                     "31.9999999999", "32", "-0", "-0.0", "+1", "1e", ".", "", "--1", "1.5", "3.0000001",
                     "\x00", "Infinity", "NaN", "1" * 400]),
    st.text(alphabet="0123456789.-+eEnaif_x ", max_size=8),
)
_LINE = st.lists(_NUM, min_size=0, max_size=6).map(" ".join)
_TEXT = st.tuples(st.lists(_LINE, max_size=6),
                  st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x1c", "\u2028"])).map(lambda t: t[1].join(t[0]))


def _points_expected(data: bytes, h: int, w: int, c: int, min_conf: float = 0.0) -> np.ndarray | None:
    """Reference reading of a points file from the format's rules, line by line with
    ``float()``: ``(N, 4) float32`` for a valid file, ``None`` for a damaged one.

    Valid: UTF-8 (an optional BOM), every non-blank line (``str.splitlines``) holds 4
    whitespace-separated numbers, finite once stored as float32, the class an integer in
    ``[0, c)``, ``0 <= x < w`` and ``0 <= y < h`` in float32. Rows with ``conf < min_conf`` are
    left out.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            return None
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            return None
    a64 = np.array(rows, np.float64).reshape(-1, 4)
    with np.errstate(over="ignore"):
        a = a64.astype(np.float32)
    if not np.isfinite(a).all() or (a64[:, 2] != np.round(a64[:, 2])).any():
        return None
    x, y, cls, conf = a.T
    if ((cls < 0) | (cls >= c) | (x < 0) | (y < 0) | (x >= w) | (y >= h)).any():
        return None
    return a[conf >= min_conf]


def _read_points_checked(p: str, data: bytes, h: int, w: int, c: int, min_conf: float = 0.0) -> None:
    """Read ``p`` (holding ``data``): an error only for a damaged file, else the reference values."""
    expected = _points_expected(data, h, w, c, min_conf)
    try:
        pts = read_points(p, h, w, c, min_conf=min_conf)
    except BestieError as e:
        assert "\n" not in str(e) and str(e).startswith(p)
        assert expected is None, f"valid points file refused: {e}"
        return
    assert expected is not None, f"damaged points file accepted: {data[:80]!r}"
    _check_points(pts, h, w, c)
    assert (pts[:, 3] >= min_conf).all()
    np.testing.assert_array_equal(pts, expected)


def _check_points(pts: np.ndarray, h: int, w: int, c: int) -> None:
    assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 4
    x, y, cls, conf = pts.T
    assert np.isfinite(pts).all()
    assert ((x >= 0) & (x < w) & (y >= 0) & (y < h)).all()
    assert ((cls >= 0) & (cls < c) & (cls == np.round(cls))).all()
    # the pixel a point falls in is inside the image
    assert ((x.astype(np.int64) < w) & (y.astype(np.int64) < h)).all()


@settings(max_examples=N["points_text"], **FUZZ)
@given(text=_TEXT, h=st.integers(0, 40), w=st.integers(0, 40), c=st.integers(0, 6),
       min_conf=st.sampled_from([0.0, 0.5, -1.0]))
@example(text="31.9999999999 0 0 1", h=32, w=32, c=1, min_conf=0.0)
@example(text="1 1 1 1e400", h=4, w=4, c=2, min_conf=0.0)
def test_fuzz_points_text(scratch, text, h, w, c, min_conf):
    p = os.path.join(scratch, "pts.txt")
    data = text.encode("utf-8")
    with open(p, "wb") as f:
        f.write(data)
    _read_points_checked(p, data, h, w, c, min_conf)


@settings(max_examples=N["points_bytes"], **FUZZ)
@given(data=st.binary(max_size=120), h=st.integers(1, 40), w=st.integers(1, 40))
def test_fuzz_points_bytes(scratch, data, h, w):
    p = os.path.join(scratch, "pts.bin")
    with open(p, "wb") as f:
        f.write(data)
    _read_points_checked(p, data, h, w, 4)


# ----------------------------------------------------------------------------------------
# index PNG masks
# ----------------------------------------------------------------------------------------
_MODES = ["P", "L", "1", "RGB", "RGBA", "LA", "I;16"]


def _png_pixels(h: int, w: int, seed: int) -> np.ndarray:
    """``(h, w) uint8`` the values :func:`_png` stores (as indices for P, grey levels for L)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _png(mode: str, h: int, w: int, seed: int) -> bytes:
    base = Image.fromarray(_png_pixels(h, w, seed), mode="L")
    if mode == "P":
        im = base.convert("P")
        im.putpalette(list(range(256)) * 3)
    else:
        im = base.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _check_mask(arr: np.ndarray, shape) -> None:
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 2
    if shape is not None:
        assert arr.shape == tuple(shape)


def _read_mask(scratch: str, data: bytes, shape, source: tuple[str, np.ndarray] | None = None) -> None:
    """Read ``data`` as a mask. ``source`` is ``(mode, pixels)`` when ``data`` is the undamaged
    output of :func:`_png`: then a P or L PNG of the right size must be read as its pixels, and
    any other must be refused for its mode or its size; a damaged PNG may be either."""
    p = os.path.join(scratch, "m.png")
    with open(p, "wb") as f:
        f.write(data)
    try:
        arr = read_index_png(p, shape)
    except BestieError as e:
        assert "\n" not in str(e) and str(e).startswith(p)
        if source is not None:
            mode, pixels = source
            if mode not in ("P", "L"):
                assert "got mode" in str(e), f"undamaged {mode} PNG refused for another reason: {e}"
            else:
                assert shape is not None and tuple(shape) != pixels.shape, f"valid PNG refused: {e}"
                assert "but the image is" in str(e)
        return
    _check_mask(arr, shape)
    if source is not None:
        mode, pixels = source
        assert mode in ("P", "L"), f"a {mode} PNG was read as indices"
        np.testing.assert_array_equal(arr, pixels)


_SHAPE = st.one_of(st.none(), st.tuples(st.integers(1, 9), st.integers(1, 9)))


@settings(max_examples=N["png_valid_mutated"], **FUZZ)
@given(mode=st.sampled_from(_MODES), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 3),
       cut=st.one_of(st.none(), st.integers(0, 400)),
       flips=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), max_size=3),
       shape=_SHAPE)
def test_fuzz_png_valid_then_damaged(scratch, mode, h, w, seed, cut, flips, shape):
    """Real PNGs of every mode and size, then cut and/or with bytes flipped."""
    data = bytearray(_png(mode, h, w, seed))
    damaged = False
    for pos, x in flips:
        if pos < len(data):
            data[pos] ^= x  # x >= 1: the byte changes
            damaged = True
    if cut is not None:
        damaged = damaged or cut < len(data)
        data = data[:cut]
    _read_mask(scratch, bytes(data), shape, None if damaged else (mode, _png_pixels(h, w, seed)))


@settings(max_examples=N["png_bytes"], **FUZZ)
@given(data=st.one_of(st.binary(max_size=200),
                      st.binary(max_size=200).map(lambda b: b"\x89PNG\r\n\x1a\n" + b)),
       shape=_SHAPE)
def test_fuzz_png_random_bytes(scratch, data, shape):
    # always damaged: random bytes never hold an IHDR with a valid CRC
    _read_mask(scratch, data, shape)


@st.composite
def _chunked_png(draw):
    """A PNG whose chunks (IHDR fields, PLTE, tRNS, IDAT payload) are rewritten with valid
    CRCs, so that the decoder gets past the checksums into the image data. Returns ``(data,
    (h, w), source)``: ``source`` is ``(mode, pixels)`` when nothing was changed, else None."""
    mode = draw(st.sampled_from(["P", "L", "RGB", "I;16"]))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    chunks = png_chunks(_png(mode, h, w, 0))
    out = []
    damaged = False
    for t, payload in chunks:
        if t == b"IHDR":
            W, H, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB", payload)
            W = draw(st.sampled_from([W, 0, 1, W + 1, 2 ** 16, 2 ** 31 - 1]))
            H = draw(st.sampled_from([H, 0, 1, H + 3, 2 ** 16]))
            depth = draw(st.sampled_from([depth, 1, 2, 4, 8, 16, 3, 0]))
            ctype = draw(st.sampled_from([ctype, 0, 2, 3, 4, 6, 5]))
            inter = draw(st.sampled_from([inter, 1, 2]))
            new = struct.pack(">IIBBBBB", W, H, depth, ctype, comp, filt, inter)
            damaged = damaged or new != payload
            payload = new
        elif t == b"IDAT":
            raw = zlib.decompress(payload)
            how = draw(st.sampled_from(["keep", "cut", "extend", "random", "filters"]))
            damaged = damaged or how != "keep"
            if how == "cut":
                raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
            elif how == "extend":
                raw = raw + draw(st.binary(min_size=1, max_size=40))
            elif how == "random":
                raw = draw(st.binary(max_size=80))
            elif how == "filters":  # invalid per-row filter types
                raw = bytes(b if i % (len(raw) // h or 1) else draw(st.integers(0, 255))
                            for i, b in enumerate(raw))
            if draw(st.booleans()):
                payload = zlib.compress(raw)  # the same pixels, compressed again
            else:
                payload = draw(st.binary(max_size=30))
                damaged = True
        elif t == b"PLTE":
            cut = draw(st.sampled_from([len(payload), 0, 3, 6, 7]))
            damaged = damaged or cut < len(payload)
            payload = payload[:cut]
        out.append((t, payload))
    if draw(st.booleans()):
        extra = (draw(st.sampled_from([b"tRNS", b"PLTE", b"IDAT", b"zzzz", b"IEND"])), draw(st.binary(max_size=20)))
        out.insert(draw(st.integers(1, len(out))), extra)
        damaged = True
    return build_png(out), (h, w), None if damaged else (mode, _png_pixels(h, w, 0))


@settings(max_examples=N["png_chunks"], **FUZZ)
@given(png=_chunked_png(), use_shape=st.booleans())
@example(png=(_png("P", 3, 4, 0), (3, 4), ("P", _png_pixels(3, 4, 0))), use_shape=True)
@example(png=(_png("RGB", 3, 4, 0), (3, 4), ("RGB", _png_pixels(3, 4, 0))), use_shape=False)
def test_fuzz_png_chunks(scratch, png, use_shape):
    data, shape, source = png
    _read_mask(scratch, data, shape if use_shape else None, source)


def test_png_contract():
    """What the fuzzing above relies on: P and L are read as stored, RGB and 16-bit refused,
    a wrong size names both sizes."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "a.png")
        arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
        Image.fromarray(arr, mode="L").save(p)
        np.testing.assert_array_equal(read_index_png(p, (3, 4)), arr)
        with pytest.raises(BestieError, match="mask is 4x3 but the image is 3x4"):
            read_index_png(p, (4, 3))
        Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(p)
        with pytest.raises(BestieError, match="got mode RGB"):
            read_index_png(p)
        Image.fromarray(np.zeros((3, 4), np.uint16)).save(p)
        with pytest.raises(BestieError, match="got mode I"):
            read_index_png(p)


# ----------------------------------------------------------------------------------------
# COCO results (predictions)
# ----------------------------------------------------------------------------------------
def _dataset() -> Dataset:
    """Two records (VOC stems: COCO ids 2000000001, 2000000002) of 4x5 and 3x3, 3 classes."""
    recs = [Record("2000_000001", "a.jpg", 4, 5, np.array([1, 0, 1], bool)),
            Record("2000_000002", "b.jpg", 3, 3, np.array([0, 1, 0], bool))]
    return Dataset(root=".", split="val", class_names=["a", "b", "c"], records=recs)


DS = _dataset()
_IDS = [2000000001, 2000000002]
_SIZES = {2000000001: (4, 5), 2000000002: (3, 3)}

_JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
_JSON = st.recursive(_JSON_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                     max_leaves=12)
_ANY = st.one_of(_JSON_SCALAR, st.lists(_JSON_SCALAR, max_size=3))


def _valid_counts(h: int, w: int, seed: int) -> str:
    m = np.random.default_rng(seed).random((h, w)) < 0.5
    return mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()


@st.composite
def _counts(draw, h: int, w: int):
    kind = draw(st.sampled_from(["valid", "mutated", "text", "list", "list_ok", "other"]))
    if kind == "valid":
        return _valid_counts(h, w, draw(st.integers(0, 50)))
    if kind == "mutated":
        s = bytearray(_valid_counts(h, w, draw(st.integers(0, 50))).encode())
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.sampled_from(["set", "cut", "add"]))
            if op == "set" and s:
                s[draw(st.integers(0, len(s) - 1))] = draw(st.integers(32, 126))
            elif op == "cut" and s:
                del s[draw(st.integers(0, len(s) - 1)):]
            else:
                s.insert(draw(st.integers(0, len(s))), draw(st.integers(32, 126)))
        return s.decode("latin-1")
    if kind == "text":
        return draw(st.text(max_size=12))
    if kind == "list":
        return draw(st.lists(st.one_of(st.integers(-3, h * w + 3), st.integers(-(2 ** 70), 2 ** 70), _JSON_SCALAR),
                             max_size=6))
    if kind == "list_ok":  # non-negative runs that may or may not sum to h * w
        runs = draw(st.lists(st.integers(0, h * w), max_size=6))
        if draw(st.booleans()) and sum(runs) <= h * w:
            runs.append(h * w - sum(runs))
        return runs
    return draw(_ANY)


@st.composite
def _entry(draw):
    iid = draw(st.one_of(st.sampled_from(_IDS), _JSON_SCALAR))
    h, w = _SIZES.get(iid, (4, 5)) if not isinstance(iid, bool) else (4, 5)
    size = draw(st.one_of(st.just([h, w]), st.just([w, h]), _ANY,
                          st.lists(st.integers(-2, 2 ** 40), min_size=2, max_size=2)))
    seg = {"size": size, "counts": draw(_counts(h, w))}
    if draw(st.integers(0, 9)) == 0:
        seg = draw(st.one_of(_JSON, st.dictionaries(st.sampled_from(["size", "counts", "x"]), _ANY)))
    e = {"image_id": iid,
         "category_id": draw(st.one_of(st.integers(0, 4), _JSON_SCALAR)),
         "score": draw(st.one_of(st.floats(0, 1), st.floats(allow_nan=True, allow_infinity=True),
                                 st.integers(-(2 ** 2000), 2 ** 2000), _JSON_SCALAR)),
         "segmentation": seg}
    for k in list(e):
        if draw(st.integers(0, 19)) == 0:
            del e[k]
    return e


def _rle_string_ok(counts: str, n: int) -> bool:
    """Reference check of a compressed COCO RLE string, decoded run by run as pycocotools'
    ``rleFrString`` does: characters ``'0'..'o'``, 5 bits per character with 0x20 = more, the
    sign in bit 0x10 of a run's last character, runs after the second as differences to the run
    two before. Valid: ASCII, no truncated run, at most 7 characters a run, no negative run,
    runs summing to ``n`` pixels."""
    try:
        b = counts.encode("ascii")
    except UnicodeEncodeError:
        return False
    runs: list[int] = []
    i = 0
    while i < len(b):
        x, k, more = 0, 0, True
        while more:
            if i == len(b) or k == 7:
                return False
            c = b[i] - 48
            if not 0 <= c <= 63:
                return False
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            i, k = i + 1, k + 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return False
        runs.append(x)
    return sum(runs) == n


def _is_json_int(v) -> bool:
    return type(v) is int


def _entry_ok(e) -> bool:
    """Reference validity of one COCO result entry for :data:`DS` (see the reader's docstring)."""
    if not isinstance(e, dict) or any(k not in e for k in ("image_id", "category_id", "score", "segmentation")):
        return False
    iid, cid, score, seg = e["image_id"], e["category_id"], e["score"], e["segmentation"]
    if not _is_json_int(iid) or iid not in _SIZES or not _is_json_int(cid) or not 1 <= cid <= 3:
        return False
    if type(score) not in (int, float):
        return False
    try:
        if not math.isfinite(float(score)):
            return False
    except OverflowError:
        return False
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        return False
    h, w = _SIZES[iid]
    size, counts = seg["size"], seg["counts"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_json_int(v) for v in size) \
            or list(size) != [h, w]:
        return False
    if isinstance(counts, str):
        return _rle_string_ok(counts, h * w)
    if isinstance(counts, list):
        return all(_is_json_int(v) and v >= 0 for v in counts) and sum(counts) == h * w
    return False


def _results_ok(doc) -> bool:
    return isinstance(doc, list) and all(_entry_ok(e) for e in doc)


def _read_predictions_checked(src, doc, path_for_errors=None) -> None:
    """Read ``src`` (holding the results ``doc``): an error only when ``doc`` is damaged, else
    every entry is read back with its class and score."""
    valid = _results_ok(doc)
    try:
        out = read_predictions(src, DS, path_for_errors=path_for_errors)
    except BestieError as e:
        assert "\n" not in str(e) and len(str(e)) < 400, "error messages stay short"
        assert str(e).startswith(str(src) if isinstance(src, (str, os.PathLike)) else path_for_errors)
        assert not valid, f"valid results refused: {e}"
        return
    assert valid, f"damaged results accepted: {str(doc)[:200]}"
    _check_predictions(out)
    for p in out.values():
        for j, cls, score in zip(p.entries, p.classes, p.scores):
            assert cls == doc[j]["category_id"] - 1 and score == float(doc[j]["score"])
    assert sum(len(p) for p in out.values()) == len(doc)


def _check_predictions(out: dict) -> None:
    assert set(out) == set(DS.image_ids)
    for image_id, p in out.items():
        rec = DS.record(image_id)
        assert len(p.rles) == len(p.classes) == len(p.scores) == len(p.entries)
        assert np.isfinite(p.scores).all()
        assert ((p.classes >= 0) & (p.classes < DS.num_classes)).all()
        if p.rles:
            # Everything accepted decodes with pycocotools to masks of the image's size.
            m = mask_utils.decode(p.rles)
            assert m.shape == (rec.height, rec.width, len(p.rles))


@settings(max_examples=N["pred_entries"], **FUZZ)
@given(entries=st.lists(_entry(), max_size=4), via_file=st.booleans())
@example(entries=[{"image_id": 2000000001, "category_id": 1, "score": 10 ** 400,
                   "segmentation": {"size": [4, 5], "counts": [20]}}], via_file=False)
def test_fuzz_prediction_entries(scratch, entries, via_file):
    if via_file:
        p = os.path.join(scratch, "preds.json")
        try:
            text = json.dumps(entries)
        except (ValueError, OverflowError):
            return
        with open(p, "w") as f:
            f.write(text)
        src = p
    else:
        src = entries
    _read_predictions_checked(src, entries, path_for_errors="preds.json")


@settings(max_examples=N["pred_json"], **FUZZ)
@given(doc=st.one_of(_JSON, st.lists(_JSON, max_size=3), st.binary(max_size=60)))
def test_fuzz_prediction_json(scratch, doc):
    """Arbitrary JSON documents (and arbitrary bytes) as a results file."""
    p = os.path.join(scratch, "r.json")
    with open(p, "wb") as f:
        f.write(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    if isinstance(doc, bytes):
        try:
            doc = json.loads(doc.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            doc = None  # not JSON: damaged
    else:
        doc = json.loads(json.dumps(doc))  # as read back (tuples become lists)
    _read_predictions_checked(p, doc)


def test_prediction_contract():
    """A valid entry is read back with its class, score and decodable RLE."""
    counts = _valid_counts(4, 5, 0)
    out = read_predictions([{"image_id": 2000000001, "category_id": 3, "score": 0.25,
                             "segmentation": {"size": [4, 5], "counts": counts}}], DS)
    p = out["2000_000001"]
    assert p.classes.tolist() == [2] and p.scores.tolist() == [0.25] and len(out["2000_000002"]) == 0
    want = np.random.default_rng(0).random((4, 5)) < 0.5
    np.testing.assert_array_equal(mask_utils.decode(p.rles[0]).astype(bool), want)
    assert math.isfinite(p.scores[0])


# ----------------------------------------------------------------------------------------
# seeded batches: one Hypothesis seed -> BATCH inputs built with random.Random
# ----------------------------------------------------------------------------------------
_TOKENS = ["nan", "-nan", "inf", "-inf", "1e400", "-1e400", "1e-400", "0x10", "1_0", "\u0663", "\uff11",
           "31.9999999999", "32", "-0", "-0.0", "+1", "1e", ".", "--1", "1.5", "3.0000001", "\x00",
           "Infinity", "NaN", "1" * 400, "0.7", "1.000", "9" * 40, "-1", "4", "3"]
_NEWLINES = ["\n", "\r\n", "\r", "\x0b", "\x1c", "\u2028", "\n\n"]


def _rand_field(r: random.Random) -> str:
    k = r.random()
    if k < 0.35:
        return str(r.randint(-3, 40))
    if k < 0.55:
        return repr(r.uniform(-2, 40))
    if k < 0.62:
        return f"{r.uniform(0, 40):.12f}"
    if k < 0.85:
        return r.choice(_TOKENS)
    return "".join(r.choice("0123456789.-+eEnaif_x") for _ in range(r.randint(0, 6)))


def _rand_points_text(r: random.Random) -> str:
    lines = [" ".join(_rand_field(r) for _ in range(r.choice([4, 4, 4, 4, 3, 5, 0, 1])))
             for _ in range(r.randint(0, 6))]
    return r.choice(_NEWLINES).join(lines)


@settings(max_examples=N["points_batch"], **FUZZ)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_points_batch(scratch, seed):
    r = random.Random(seed)
    p = os.path.join(scratch, "b.txt")
    for _ in range(BATCH):
        h, w, c = r.randint(1, 40), r.randint(1, 40), r.randint(1, 6)
        if r.random() < 0.1:
            data = bytes(r.randrange(256) for _ in range(r.randint(0, 40)))
        else:
            data = _rand_points_text(r).encode("utf-8", "surrogatepass")
        with open(p, "wb") as f:
            f.write(data)
        _read_points_checked(p, data, h, w, c)


@functools.lru_cache(maxsize=None)
def _base_png(mode: str, h: int, w: int) -> bytes:
    return _png(mode, h, w, 0)


def _mutate_png(r: random.Random, data: bytes, h: int) -> bytes:
    how = r.choice(["flip", "cut", "chunk", "chunk", "ihdr", "idat"])
    if how == "flip":
        b = bytearray(data)
        for _ in range(r.randint(1, 4)):
            b[r.randrange(len(b))] ^= r.randint(1, 255)
        return bytes(b)
    if how == "cut":
        return data[: r.randrange(len(data))]
    chunks = png_chunks(data)
    out = []
    for t, payload in chunks:
        if t == b"IHDR" and how in ("ihdr", "chunk"):
            f = list(struct.unpack(">IIBBBBB", payload))
            i = r.randrange(7)
            f[i] = r.choice([0, 1, 2, 3, 4, 5, 6, 8, 16, 255, 2 ** 16, 2 ** 31 - 1][: 11 if i < 2 else 9])
            payload = struct.pack(">IIBBBBB", *f)
        elif t == b"IDAT" and how in ("idat", "chunk"):
            raw = bytearray(zlib.decompress(payload))
            op = r.choice(["cut", "extend", "filters", "junk"])
            if op == "cut" and raw:
                del raw[r.randrange(len(raw)):]
            elif op == "extend":
                raw += bytes(r.randrange(256) for _ in range(r.randint(1, 30)))
            elif op == "filters":
                row = max(1, len(raw) // max(h, 1))
                for k in range(0, len(raw), row):
                    raw[k] = r.randrange(256)
            else:
                raw = bytearray(r.randrange(256) for _ in range(r.randint(0, 60)))
            payload = zlib.compress(bytes(raw)) if r.random() < 0.8 else bytes(raw[:20])
        elif t == b"PLTE" and how == "chunk":
            payload = payload[: r.choice([0, 3, 6, 7, len(payload)])]
        out.append((t, payload))
    if r.random() < 0.3:
        out.insert(r.randint(1, len(out)), (r.choice([b"tRNS", b"PLTE", b"IDAT", b"zzzz", b"IEND", b"IHDR"]),
                                            bytes(r.randrange(256) for _ in range(r.randint(0, 20)))))
    return build_png(out)


@settings(max_examples=N["png_batch"], **FUZZ)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_png_batch(scratch, seed):
    r = random.Random(seed)
    for _ in range(BATCH):
        mode, h, w = r.choice(_MODES), r.randint(1, 8), r.randint(1, 8)
        data = _base_png(mode, h, w)
        source = (mode, _png_pixels(h, w, 0))
        if r.random() < 0.85:
            data = _mutate_png(r, data, h)
            source = None  # damaged (or rarely rewritten to the same bytes: either is fine)
        shape = None if r.random() < 0.3 else (h, w) if r.random() < 0.8 else (w, h)
        _read_mask(scratch, data, shape, source)


def _rand_scalar(r: random.Random):
    return r.choice([None, True, False, r.randint(-5, 5), r.randint(-(2 ** 70), 2 ** 70), 10 ** 400,
                     r.random(), math.nan, math.inf, -math.inf, "", "x", "1", "2000000001", [], {}])


def _rand_counts(r: random.Random, h: int, w: int):
    k = r.random()
    if k < 0.3:
        return _valid_counts(h, w, r.randint(0, 50))
    if k < 0.6:
        b = bytearray(_valid_counts(h, w, r.randint(0, 50)).encode())
        for _ in range(r.randint(1, 3)):
            op = r.choice(["set", "cut", "add"])
            if op == "set" and b:
                b[r.randrange(len(b))] = r.randint(32, 126)
            elif op == "cut" and b:
                del b[r.randrange(len(b)):]
            else:
                b.insert(r.randint(0, len(b)), r.randint(32, 126))
        return b.decode("latin-1")
    if k < 0.7:
        return "".join(chr(r.randint(32, 0x2FF)) for _ in range(r.randint(0, 8)))
    if k < 0.8:
        runs = [r.randint(0, h * w) for _ in range(r.randint(0, 5))]
        if r.random() < 0.5 and sum(runs) <= h * w:
            runs.append(h * w - sum(runs))
        return runs
    if k < 0.9:
        return [r.choice([r.randint(-3, h * w + 3), 2 ** 70, -(2 ** 70), 1.5, True, None, "3"])
                for _ in range(r.randint(0, 5))]
    return _rand_scalar(r)


def _rand_entry(r: random.Random, p_bad: float) -> dict:
    """An entry whose every part is valid with probability ``1 - p_bad``."""
    bad = lambda: r.random() < p_bad  # noqa: E731
    iid = _rand_scalar(r) if bad() else r.choice(_IDS)
    h, w = _SIZES.get(iid, (4, 5)) if iid in _IDS and not isinstance(iid, bool) else (4, 5)
    size = r.choice([[w, h], [h], [h, w, 1], [-h, w], [float(h), w], "4x5", [2 ** 40, w],
                     _rand_scalar(r)]) if bad() else [h, w]
    counts = _rand_counts(r, h, w) if bad() else r.choice([_valid_counts(h, w, r.randint(0, 50)), [h * w]])
    seg = {"size": size, "counts": counts}
    if bad() and r.random() < 0.3:
        seg = r.choice([_rand_scalar(r), {"size": size}, {"counts": "0"}, [seg]])
    e = {"image_id": iid,
         "category_id": r.choice([r.randint(-2, 6), _rand_scalar(r)]) if bad() else r.randint(1, 3),
         "score": r.choice([_rand_scalar(r), 10 ** 400, -math.inf]) if bad() else r.random(),
         "segmentation": seg}
    for key in list(e):
        if bad() and r.random() < 0.2:
            del e[key]
    return _rand_scalar(r) if bad() and r.random() < 0.1 else e


@settings(max_examples=N["pred_batch"], **FUZZ)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_prediction_batch(scratch, seed):
    r = random.Random(seed)
    for _ in range(BATCH):
        p_bad = r.choice([0.0, 0.05, 0.2, 0.6])
        entries = [_rand_entry(r, p_bad) for _ in range(r.randint(0, 5))]
        _read_predictions_checked(entries, entries, path_for_errors="preds.json")


# ----------------------------------------------------------------------------------------
# COCO instances files (dataset reader and GT decoding)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coco_images(scratch):
    d = os.path.join(scratch, "coco_images")
    os.makedirs(d, exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(os.path.join(d, name))
    return d


def _rand_coco(r: random.Random) -> tuple[dict, bool]:
    """A COCO instances dict of 1-2 images of 4x5, every part valid with probability ~0.9, and
    whether it is damaged (True when any part was drawn from the damaged choices)."""
    damage = []

    def bad() -> bool:
        damage.append(r.random() < 0.1)
        return damage[-1]

    cats = [{"id": k + 1, "name": f"c{k}"} for k in range(r.randint(1, 3))]
    if bad():
        cats[0] = r.choice([{"name": "x"}, {"id": "1", "name": "x"}, {"id": 1}, {"id": True, "name": 1}, 7, None])
    images = [{"id": i + 1, "file_name": n, "height": 4, "width": 5} for i, n in enumerate(["a.jpg", "b.jpg"][:r.randint(1, 2)])]
    if bad():
        key = r.choice(["id", "file_name", "height", "width"])
        images[0][key] = _rand_scalar(r) if r.random() < 0.7 else images[0].pop(key) and None
    anns = []
    for n in range(r.randint(0, 3)):
        segs = [{"size": [4, 5], "counts": _rand_counts(r, 4, 5)},
                {"size": [4, 5], "counts": _valid_counts(4, 5, n)},
                [[r.uniform(-1, 6) for _ in range(r.choice([6, 8, 4, 5]))]],
                [], _rand_scalar(r)]
        k = r.randrange(len(segs))
        seg = segs[k]
        # valid: the RLE made by pycocotools, or one polygon of 3 or 4 points (COCO clips
        # polygons to the image); any other is damaged
        damage.append(not (k == 1 or (k == 2 and len(seg[0]) in (6, 8))))
        anns.append({"id": n + 1, "image_id": r.choice([1, 2, 1, _rand_scalar(r)]) if bad() else 1,
                     "category_id": r.choice([1, 9, _rand_scalar(r)]) if bad() else 1,
                     "iscrowd": r.choice([0, 0, 1]), "segmentation": seg})
    d = {"images": images, "annotations": anns, "categories": cats}
    if r.random() < 0.03:
        d[r.choice(list(d))] = _rand_scalar(r)
        damage.append(True)
    return d, any(damage)


@settings(max_examples=N["coco_batch"], **FUZZ)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_coco_dataset_batch(scratch, coco_images, seed):
    """Random (mostly valid) COCO files: opening them and decoding every image's GT either
    works (masks of the image's size) or raises BestieError."""
    from bestie_labels.datasets import open_dataset

    r = random.Random(seed)
    p = os.path.join(scratch, "instances.json")
    for _ in range(BATCH):
        doc, damaged = _rand_coco(r)
        with open(p, "w") as f:
            json.dump(doc, f)
        try:
            ds = open_dataset(p, images=coco_images)
            for rec in ds.records:
                gt = ds.load_gt(rec)
                assert gt.masks.shape[1:] == (rec.height, rec.width) and gt.masks.dtype == bool
                assert ((gt.classes >= 0) & (gt.classes < ds.num_classes)).all()
        except BestieError as e:  # names the JSON, or the image file it points to
            assert e.path is not None and str(e).startswith(e.path) and "\n" not in str(e)
            assert damaged, f"valid COCO file refused: {e}"
            continue
        if not damaged:
            assert len(ds) == len(doc["images"]) and ds.num_classes == len(doc["categories"])
            n = sum(len(ds.load_gt(rec).classes) for rec in ds.records)
            assert n == sum(a["image_id"] in {im["id"] for im in doc["images"]} for a in doc["annotations"])


# ----------------------------------------------------------------------------------------
# VOC text files: split lists, label files, class names, annotation XML
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def voc_root(scratch):
    from badinput_helpers import make_tiny_tree

    return make_tiny_tree(os.path.join(scratch, "voc"), n_images=2)


_VOC_IDS = ["2000_000001", "2000_000002"]
_JUNK = ["", " ", "\t", "x", "-1", "0", "1", "3", "4", "99", "1.0", "a b", "/JPEGImages/2000_000001.jpg", "\x00",
         "2000_000003", "２", "\ufeff", "#", "\\", "..", "disc", "block"]


def _rand_line(r: random.Random, ids: list[str]) -> str:
    head = r.choice(ids + ids + _JUNK)
    return " ".join([head] + [r.choice(["0", "1", "2", "3"] + _JUNK) for _ in range(r.randint(0, 3))])


def _mutate_xml(r: random.Random, text: str) -> str:
    op = r.choice(["name", "size", "cut", "junk", "keep"])
    if op == "name":
        return text.replace("<name>", "<name>" + r.choice(_JUNK), 1)
    if op == "size":
        return text.replace("<height>", "<height>" + r.choice(["x", "-", "1e9", "0", "", "9" * 30]), 1)
    if op == "cut":
        return text[: r.randrange(len(text))]
    if op == "junk":
        return "".join(r.choice("<>/ a=\"'&;") for _ in range(r.randint(0, 30)))
    return text


@settings(max_examples=N["voc_batch"], **FUZZ)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_fuzz_voc_text_files_batch(voc_root, scratch, seed):
    """Random split / label / class-name files and damaged XML: open_dataset gives a valid
    split or a BestieError naming a file."""
    import shutil

    from bestie_labels.datasets import open_dataset

    r = random.Random(seed)
    root = os.path.join(scratch, "voc_fuzz")
    if not os.path.isdir(root):
        shutil.copytree(voc_root, root)
    xml0 = {i: (Path(voc_root) / "Annotations" / f"{i}.xml").read_text() for i in _VOC_IDS}
    names0 = (Path(voc_root) / "class_names.txt").read_text()
    for _ in range(BATCH):
        # damaged: a junk line, an empty split list, an image listed twice, a changed XML or
        # class-name file, a random label file (the untouched tree is valid)
        seg = Path(root) / "ImageSets" / "Segmentation" / "t.txt"
        lines = [_rand_line(r, _VOC_IDS) if r.random() < 0.3 else r.choice(_VOC_IDS)
                 for _ in range(r.randint(0, 3))]
        damaged = not lines or len(set(lines)) < len(lines) or not set(lines) <= set(_VOC_IDS)
        seg.write_text("\n".join(lines), encoding="utf-8")
        for i in _VOC_IDS:
            xml = _mutate_xml(r, xml0[i]) if r.random() < 0.3 else xml0[i]
            damaged = damaged or xml != xml0[i]
            (Path(root) / "Annotations" / f"{i}.xml").write_text(xml, encoding="utf-8")
        names = names0 if r.random() < 0.7 else "\n".join(r.choice(_JUNK) for _ in range(r.randint(0, 4)))
        damaged = damaged or names != names0
        (Path(root) / "class_names.txt").write_text(names, encoding="utf-8")
        labels = None
        if r.random() < 0.5:
            labels = os.path.join(scratch, "t_cls.txt")
            Path(labels).write_text("\n".join(_rand_line(r, _VOC_IDS) for _ in range(r.randint(0, 3))),
                                    encoding="utf-8")
            damaged = True
        try:
            ds = open_dataset(root, "t", labels=labels)
        except BestieError as e:
            assert e.path is not None and "\n" not in str(e)
            assert damaged, f"valid VOC tree refused: {e}"
            continue
        assert len(ds) >= 1 and len(set(ds.image_ids)) == len(ds)
        if not damaged:
            assert ds.image_ids == lines
        for rec in ds.records:
            assert rec.labels.dtype == bool and rec.labels.shape == (ds.num_classes,)
            assert rec.height > 0 and rec.width > 0


def test_points_contract(scratch):
    """What the points fuzzing relies on: a UTF-8 BOM and CRLF line ends (Windows editors) are
    read; a value that rounds onto the border in float32 is outside; min_conf filters after the
    checks."""
    p = os.path.join(scratch, "bom.txt")
    with open(p, "wb") as f:
        f.write(b"\xef\xbb\xbf1 2 0 0.9\r\n3.5 4 1 0.2\r\n")
    np.testing.assert_array_equal(read_points(p, 8, 8, 2), np.array([[1, 2, 0, 0.9], [3.5, 4, 1, 0.2]], np.float32))
    np.testing.assert_array_equal(read_points(p, 8, 8, 2, min_conf=0.5), np.array([[1, 2, 0, 0.9]], np.float32))
    with open(p, "w") as f:
        f.write("7.99999999999 0 0 1\n")
    with pytest.raises(BestieError, match=r"line 1: point \(7.99999999999, 0\) is outside the 8x8 image"):
        read_points(p, 8, 8, 1)
