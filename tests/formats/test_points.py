import numpy as np
import pytest

from bestie_labels.core.errors import BestieError
from bestie_labels.formats.points import read_points, write_points


def _file(tmp_path, text, name="2007_000032.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_points_values_blank_lines_and_min_conf(tmp_path):
    p = _file(tmp_path, "10 20 0 0.900\n\n  3 4 2 0.5  \n0 0 1 0.7\n")
    pts = read_points(p, height=30, width=40, num_classes=3)
    assert pts.dtype == np.float32 and pts.shape == (3, 4)
    np.testing.assert_array_equal(pts[:, :3], [[10, 20, 0], [3, 4, 2], [0, 0, 1]])
    np.testing.assert_allclose(pts[:, 3], [0.9, 0.5, 0.7])
    # conf >= min_conf is kept: 0.7 stays at 0.7, 0.5 goes.
    kept = read_points(p, 30, 40, 3, min_conf=0.7)
    np.testing.assert_array_equal(kept[:, 0], [10, 0])


def test_read_points_empty_file_means_no_points(tmp_path):
    for text in ("", "\n\n  \n"):
        pts = read_points(_file(tmp_path, text), 10, 10, 20)
        assert pts.shape == (0, 4) and pts.dtype == np.float32


@pytest.mark.parametrize("text, message", [
    ("1 2 0 0.5\n1 2 0\n", "line 2: expected 4 fields"),
    ("1 2 0 0.5 9\n", "line 1: expected 4 fields"),
    ("1 2 0 0.5\n\nx 2 0 0.5\n", "line 3: non-numeric field 'x'"),
    ("1 2 0 high\n", "line 1: non-numeric field 'high'"),
    ("1 2 -1 0.5\n", "line 1: class -1 outside 0..19"),
    ("1 2 20 0.5\n", "line 1: class 20 outside 0..19"),
    ("1 2 1.5 0.5\n", "line 1: class '1.5' is not an integer"),
    ("0 0 0 0.5\n40 5 0 0.5\n", r"line 2: point \(40, 5\) is outside the 40x30 image"),
    ("5 30 0 0.5\n", r"line 1: point \(5, 30\) is outside the 40x30 image"),
    ("-1 3 0 0.5\n", r"line 1: point \(-1, 3\) is outside"),
    ("5 -0.5 0 0.5\n", r"line 1: point \(5, -0.5\) is outside"),
    ("1 2 0 nan\n", "line 1: confidence is NaN"),
    ("nan 2 0 0.5\n", "line 1: coordinate or class is not a finite number"),
])
def test_read_points_errors_name_file_and_line(tmp_path, text, message):
    p = _file(tmp_path, text)
    with pytest.raises(BestieError, match=message) as e:
        read_points(p, height=30, width=40, num_classes=20)
    assert str(e.value).startswith(str(p))
    assert "\n" not in str(e.value)


def test_read_points_missing_file(tmp_path):
    with pytest.raises(BestieError, match="points file not found"):
        read_points(tmp_path / "nope.txt", 10, 10, 2)


def test_write_points_official_format_roundtrip(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    pts = np.array([[12.7, 3.2, 4, 0.98765], [0, 9, 0, 1.0]], np.float32)
    write_points(p, pts)
    assert p.read_text() == "12 3 4 0.988\n0 9 0 1.000\n"
    back = read_points(p, 10, 13, 5)
    np.testing.assert_allclose(back, [[12, 3, 4, 0.988], [0, 9, 0, 1.0]], rtol=0, atol=1e-6)
    assert not any(q.name.startswith(".") for q in p.parent.iterdir())  # no temporary left
    write_points(p, np.zeros((0, 4), np.float32))
    assert p.read_text() == ""
