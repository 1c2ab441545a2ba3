"""Augmentation pieces: the official resize, discrete scales, point mapping, photometric distortion."""

from __future__ import annotations

import numpy as np
import pytest

from bestie_train.augment import (Geometry, draw_geometry, inside_crop, official_resize_shape, photometric_distort,
                                  warp_map, warp_points)


@pytest.mark.parametrize("hw,size,want", [
    ((375, 500), 480, (353, 449)),  # VOC landscape: long side 449, short 336 rounded up to 32k+1
    ((500, 333), 480, (449, 321)),  # portrait: 299 -> 321
    ((128, 128), 192, (161, 161)),  # the demo at crop 128
    ((100, 120), 480, (385, 449)),  # small images grow: 374 -> 385
])
def test_official_resize_shape(hw, size, want):
    assert official_resize_shape(*hw, size) == want
    assert all((v - 1) % 32 == 0 for v in official_resize_shape(*hw, size))


def test_discrete_scales_and_resize_compose():
    seen = set()
    for i in range(200):
        g = draw_geometry(np.random.default_rng(i), 375, 500, 416, resize_to=480, scale_step=0.1)
        f = g.width / 449
        seen.add(round(f, 1))
        assert abs(g.height - round(353 * round(f, 1))) <= 1 and g.width == round(449 * round(f, 1))
    assert seen == {0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3}
    # uniform scale (CPU recipe): the same first draw, lo + (hi - lo) u
    u = np.random.default_rng(5).random()
    g = draw_geometry(np.random.default_rng(5), 100, 200, 64, scale=(0.5, 1.5))
    assert g.width == round(200 * (0.5 + u)) and g.crop == 64


def test_warp_points_follow_the_pixels():
    # a 10x20 image scaled x2 to 20x40, rows 3..12 and columns 25..34 cropped, then flipped
    g = Geometry(height=20, width=40, ys=3, yd=0, hl=10, xs=25, xd=0, wl=10, crop=10, flip=True)
    img = np.zeros((10, 20), np.uint8)
    img[4, 14] = 1
    out = warp_map(img, g, 255, nearest=True)
    assert out.shape == (10, 10) and (out == 255).sum() == 0
    np.testing.assert_array_equal(np.argwhere(out == 1), [[5, 5], [5, 6], [6, 5], [6, 6]])
    p = warp_points(np.array([[14.0, 4.0], [2.0, 4.0]]), g, 10, 20)
    np.testing.assert_allclose(p, [[5.5, 5.5], [29.5, 5.5]])  # the block's centre; the second is left of the crop
    np.testing.assert_array_equal(inside_crop(p, 10), [True, False])
    # a crop larger than the image pads with the fill value
    g2 = Geometry(height=10, width=20, ys=0, yd=2, hl=10, xs=0, xd=0, wl=20, crop=24, flip=False)
    out2 = warp_map(img, g2, 255, nearest=True)
    assert out2[2 + 4, 14] == 1 and (out2 == 255).sum() == 24 * 24 - 200


def test_photometric_distortion_is_seeded_and_bounded():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = photometric_distort(img, np.random.default_rng(7))
    b = photometric_distort(img, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == img.shape
    changed = sum(not np.array_equal(photometric_distort(img, np.random.default_rng(s)), img) for s in range(20))
    assert 10 <= changed <= 20  # each of the three steps applies with p 1/2


class _Fixed:
    """A generator stand-in whose ``random(8)`` returns fixed draws."""

    def __init__(self, d):
        self.d = np.asarray(d, float)

    def random(self, n):
        return self.d[:n]


def test_photometric_steps_by_hand():
    img = np.array([[[100, 50, 200]]], np.uint8)
    # nothing applies (all probabilities drawn >= 0.5)
    np.testing.assert_array_equal(photometric_distort(img, _Fixed([0.9] * 8)), img)
    # brightness only: +(0.75 * 32 - 16) = +8
    np.testing.assert_array_equal(photometric_distort(img, _Fixed([0.1, 0.75, 0.9, 0.9, 0, 0.9, 0, 0])),
                                  [[[108, 58, 208]]])
    # contrast only, x (0.5 + 0.7) = 1.2, clipped at 255
    np.testing.assert_array_equal(photometric_distort(img, _Fixed([0.9, 0, 0.1, 0.1, 0.7, 0.9, 0, 0])),
                                  [[[120, 60, 240]]])
    # hue only: +(0.5 * 72 - 36) = 0 degrees leaves the colour (up to HSV round trip rounding)
    out = photometric_distort(img, _Fixed([0.9, 0, 0.9, 0.9, 0, 0.1, 0.5, 0]))
    assert np.abs(out.astype(int) - img).max() <= 1
    # hue by +120 degrees rotates R->G->B
    out = photometric_distort(np.array([[[200, 0, 0]]], np.uint8), _Fixed([0.9, 0, 0.9, 0.9, 0, 0.1, 156 / 72, 0]))
    np.testing.assert_array_equal(out, [[[0, 200, 0]]])
