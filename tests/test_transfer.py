import numpy as np
import pytest

from bestie_labels.datasets.base import GtInstances
from bestie_labels.transfer import gt_to_pseudo, transfer_instances


def _scene():
    """A 20x30 WSSS mask with hand-placed components (values are class + 1)."""
    w = np.zeros((20, 30), np.uint8)
    w[1:5, 1:5] = 1      # A: class 0, 16 px, one cue of class 0            -> kept
    w[0:4, 20:25] = 1    # F: class 0, 20 px, one cue, first pixel row 0      -> kept, before A
    w[1:5, 10:15] = 1    # B: class 0, 20 px, two cues                        -> rejected
    w[8:12, 1:5] = 1     # C: class 0, 16 px, no cue                          -> rejected
    w[15, 1:3] = 1       # D: class 0, 2 px, one cue (under min_area 5)       -> dropped
    w[8:13, 10:14] = 2   # E: class 1, 20 px, one class-1 cue + a class-0 cue -> kept
    w[15:19, 20:25] = 3  # G: class 2 not in the image label                  -> ignored
    w[12:14, 20:22] = 255
    cues = np.array([
        [4.9, 4.9, 0, 0.8],    # in A (pixel (4, 4): truncated, not rounded)
        [22, 2, 0, 0.6],       # in F
        [11, 2, 0, 0.9],       # in B
        [13, 3, 0, 0.7],       # in B
        [1, 15, 0, 0.5],       # in D (too small)
        [11, 9, 1, 0.4],       # in E
        [12, 10, 0, 0.3],      # class-0 cue inside E's class-1 component: ignored for E
        [21, 16, 2, 1.0],      # in G, class not labelled
        [29.7, 19.9, 1, 0.2],  # clipped to the last pixel (19, 29): background, no effect
    ], np.float32)
    labels = np.array([True, True, False])
    return w, cues, labels


def test_transfer_keeps_components_with_exactly_one_cue():
    w, cues, labels = _scene()
    out = transfer_instances(w, cues, labels, min_area=5)
    inst = out["instances"]
    assert inst.dtype == np.uint16 and inst.shape == (20, 30)
    np.testing.assert_array_equal(out["classes"], [0, 0, 1])
    assert out["classes"].dtype == np.int32
    # F (first pixel (0, 20)) comes before A (first pixel (1, 1)) in raster order.
    expect = np.zeros((20, 30), np.uint16)
    expect[0:4, 20:25] = 1
    expect[1:5, 1:5] = 2
    expect[8:13, 10:14] = 3
    np.testing.assert_array_equal(inst, expect)
    # Centroids: F rows 0..3, cols 20..24; A rows 1..4, cols 1..4; E rows 8..12, cols 10..13.
    np.testing.assert_allclose(out["centers"], [[22.0, 1.5], [2.5, 2.5], [11.5, 10.0]], atol=1e-5)
    assert out["centers"].dtype == np.float32
    np.testing.assert_allclose(out["scores"], [0.6, 0.8, 0.4])


def test_transfer_point_centers_are_the_cues():
    w, cues, labels = _scene()
    out = transfer_instances(w, cues, labels, min_area=5, center="point")
    np.testing.assert_allclose(out["centers"], [[22, 2], [4.9, 4.9], [11, 9]], atol=1e-6)


def test_transfer_min_area_keeps_small_component_when_allowed():
    w, cues, labels = _scene()
    out = transfer_instances(w, cues, labels, min_area=2)
    # D (2 px at row 15) joins class 0; its first pixel (15, 1) is after A's and F's.
    np.testing.assert_array_equal(out["classes"], [0, 0, 0, 1])
    assert (out["instances"][15, 1:3] == 3).all()
    # Default min_area 50 drops everything in this small scene.
    assert transfer_instances(w, cues, labels)["classes"].size == 0


def test_transfer_connectivity():
    w = np.zeros((10, 10), np.uint8)
    w[0:3, 0:3] = 1
    w[3:6, 3:6] = 1  # touches the first square only at a corner
    cues = np.array([[1, 1, 0, 1.0], [4, 4, 0, 0.5]], np.float32)
    eight = transfer_instances(w, cues, np.array([True]), min_area=1, connectivity=8)
    assert eight["classes"].size == 0  # one component with two cues
    four = transfer_instances(w, cues, np.array([True]), min_area=1, connectivity=4)
    np.testing.assert_array_equal(four["classes"], [0, 0])
    assert four["instances"][1, 1] == 1 and four["instances"][4, 4] == 2
    np.testing.assert_allclose(four["centers"], [[1, 1], [4, 4]])


def test_transfer_empty_inputs():
    w = np.ones((6, 7), np.uint8)
    for cues in (np.zeros((0, 4), np.float32), np.array([[1, 1, 1, 1.0]], np.float32)):
        out = transfer_instances(w, cues, np.array([True, True]), min_area=1)
        assert out["instances"].shape == (6, 7) and not out["instances"].any()
        assert out["classes"].shape == (0,) and out["centers"].shape == (0, 2)
        assert out["scores"].shape == (0,)


def test_transfer_rejects_bad_options():
    w = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="center"):
        transfer_instances(w, np.zeros((0, 4)), np.array([True]), center="middle")
    with pytest.raises(ValueError, match="connectivity"):
        transfer_instances(w, np.zeros((0, 4)), np.array([True]), connectivity=6)


def test_gt_to_pseudo_centroids_crowd_void_and_overlap():
    h, w = 12, 12
    masks = np.zeros((4, h, w), bool)
    masks[0, 2:7, 3:8] = True   # 5x5 square, class 2
    masks[1, 8:10, 0:4] = True  # crowd: left out
    masks[2, 0:2, 0:2] = True   # fully covered by instance 3 below -> dropped
    masks[3, 0:2, 0:3] = True   # class 1, wins the overlap
    void = np.zeros((h, w), bool)
    void[6, 3:8] = True         # the square's bottom row is void
    gt = GtInstances(masks=masks, classes=np.array([2, 0, 4, 1]), crowd=np.array([False, True, False, False]),
                     void=void)
    out = gt_to_pseudo(gt)
    np.testing.assert_array_equal(out["classes"], [2, 1])
    expect = np.zeros((h, w), np.uint16)
    expect[2:6, 3:8] = 1
    expect[0:2, 0:3] = 2
    np.testing.assert_array_equal(out["instances"], expect)
    # Square minus void row: rows 2..5 (mean 3.5), cols 3..7 (mean 5); second: rows 0..1, cols 0..2.
    np.testing.assert_allclose(out["centers"], [[5.0, 3.5], [1.0, 0.5]])
    np.testing.assert_array_equal(out["scores"], [1, 1])


def test_gt_to_pseudo_point_is_deepest_pixel():
    masks = np.zeros((2, 12, 12), bool)
    masks[0, 2:7, 3:8] = True    # 5x5 square: the center pixel (x 5, y 4) is deepest
    masks[1, 9:12, 0:12] = True  # 3-row band along the bottom and side borders
    # The image border counts as outside: pixels of rows 9 and 11 and of columns 0 and 11 are
    # at distance 1; row 10, columns 1..10 at distance 2; the first in raster order is x = 1.
    gt = GtInstances(masks=masks, classes=np.array([0, 1]), crowd=np.zeros(2, bool),
                     void=np.zeros((12, 12), bool))
    out = gt_to_pseudo(gt, center="point")
    np.testing.assert_array_equal(out["centers"][0], [5, 4])
    np.testing.assert_array_equal(out["centers"][1], [1, 10])
