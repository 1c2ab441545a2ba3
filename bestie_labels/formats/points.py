"""Point files in the official BESTIE text format.

One file per image (``Peak_points/<id>.txt`` for cues extracted from image-level labels,
``Center_points/<id>.txt`` for point supervision), one point per line::

    x y cls conf

``x`` and ``y`` are pixel coordinates in the original image, ``cls`` the 0-based class index,
``conf`` the confidence. An empty file means no point; blank lines are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import BestieError
from ..core.fileio import atomic_path


def _first_bad(bad: np.ndarray) -> int:
    """Index of the first True of a boolean vector (the caller knows there is one)."""
    return int(np.flatnonzero(bad)[0])


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_points(path: str | os.PathLike, height: int, width: int, num_classes: int,
                min_conf: float = 0.0) -> np.ndarray:
    """Read and validate one point file.

    Args:
        path: the text file.
        height, width: size of the image the points belong to; every point must satisfy
            ``0 <= x < width`` and ``0 <= y < height``.
        num_classes: classes are integers in ``[0, num_classes)``.
        min_conf: points with ``conf < min_conf`` are dropped (after validation).

    Returns:
        ``(N, 4) float32`` rows ``x, y, cls, conf`` in file order.

    Raises:
        BestieError: naming the file and the (1-based) line, for a missing file, a line without
            exactly 4 fields, a non-numeric field, a non-integer, negative or too large class,
            a point outside the image, or a NaN / infinite value.
    """
    path = Path(path)
    rows, line_no = _point_fields(path)
    if not rows:
        return np.zeros((0, 4), np.float32)
    pts = _checked_values(_numbers(rows, line_no, path), rows, np.asarray(line_no), path, height, width,
                          num_classes)
    return pts[pts[:, 3] >= min_conf]


def _point_fields(path: Path) -> tuple[list[list[str]], list[int]]:
    """The 4 text fields of each non-empty line and its 1-based line number."""
    if not path.is_file():
        raise BestieError("points file not found", path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not a field
    except UnicodeDecodeError:
        raise BestieError("not a text file", path) from None
    rows, line_no = [], []
    for i, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise BestieError(
                f"line {i}: expected 4 fields 'x y cls conf', got {len(fields)}: {line.strip()!r}", path)
        rows.append(fields)
        line_no.append(i)
    return rows, line_no


def _numbers(rows: list[list[str]], line_no: list[int], path: Path) -> np.ndarray:
    """``(N, 4) float64`` of the fields; a non-numeric one is an error naming its line."""
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        # Find the offending line only on the error path (float() is the reference: should
        # numpy refuse a string float() accepts, the values parsed here are used).
        vals = []
        for fields, i in zip(rows, line_no):
            try:
                vals.append([float(f) for f in fields])
            except ValueError:
                f = next(f for f in fields if not _is_float(f))
                raise BestieError(f"line {i}: non-numeric field {f!r}", path) from None
        return np.array(vals, dtype=np.float64)


def _checked_values(pts: np.ndarray, rows: list[list[str]], line_no: np.ndarray, path: Path, height: int,
                    width: int, num_classes: int) -> np.ndarray:
    """``pts`` as ``(N, 4) float32`` once every value is valid (see :func:`read_points`)."""
    # Validate the values as they will be returned: a coordinate just below the border in
    # float64 (31.999999999) rounds onto it in float32.
    cls64 = pts[:, 2]
    with np.errstate(over="ignore"):
        pts = pts.astype(np.float32)
    x, y, cls, conf = pts.T

    bad = ~np.isfinite(pts[:, :3]).all(1)
    if bad.any():
        k = _first_bad(bad)
        raise BestieError(f"line {line_no[k]}: coordinate or class is not a finite number", path)
    bad = ~np.isfinite(conf)
    if bad.any():
        k = _first_bad(bad)
        what = "NaN" if np.isnan(conf[k]) else f"infinite ({rows[k][3]!r})"
        raise BestieError(f"line {line_no[k]}: confidence is {what}", path)
    bad = cls64 != np.round(cls64)
    if bad.any():
        k = _first_bad(bad)
        raise BestieError(f"line {line_no[k]}: class {rows[k][2]!r} is not an integer", path)
    bad = (cls < 0) | (cls >= num_classes)
    if bad.any():
        k = _first_bad(bad)
        raise BestieError(
            f"line {line_no[k]}: class {int(cls[k])} outside 0..{num_classes - 1} (classes are 0-based)", path)
    bad = (x < 0) | (y < 0) | (x >= width) | (y >= height)
    if bad.any():
        k = _first_bad(bad)
        raise BestieError(
            f"line {line_no[k]}: point ({rows[k][0]}, {rows[k][1]}) is outside the {width}x{height} image",
            path)
    return pts


def format_points(points: np.ndarray) -> str:
    """``(N, 4)`` points as official BESTIE text, ``"%d %d %d %.3f"`` per line."""
    points = np.asarray(points, np.float64).reshape(-1, 4)
    return "".join("%d %d %d %.3f\n" % tuple(row) for row in points)


def write_points(path: str | os.PathLike, points: np.ndarray) -> None:
    """Write ``(N, 4)`` points ``x, y, cls, conf`` atomically in the official format.

    Coordinates and class are written as integers (truncated), the confidence with 3 decimals,
    as the official BESTIE files are. ``N = 0`` writes an empty file.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 4:
        if points.size == 0:
            points = points.reshape(0, 4)
        else:
            raise ValueError(f"points must be (N, 4), got {points.shape}")
    with atomic_path(path, suffix=".txt") as tmp:
        tmp.write_text(format_points(points))
