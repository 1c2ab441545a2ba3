import numpy as np
import pytest

from bestie_labels.datasets.base import GtInstances
from bestie_labels.algorithms.knowledge_transfer import gt_to_pseudo, transfer_instances


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


def test_transfer_orders_by_first_pixel_not_bounding_box():
    # P, a hook: its top row starts at (0, 8), but its bounding box starts at (0, 0).
    # Q, a 2x2 square with first pixel (0, 3): first in raster order, though its box corner
    # (0, 3) comes after P's.
    w = np.zeros((6, 12), np.uint8)
    w[0, 8:10] = 1
    w[1:4, 8] = 1
    w[4, 0:9] = 1
    w[0:2, 3:5] = 1
    cues = np.array([[0, 4, 0, 0.5], [3.5, 0.2, 0, 0.9]], np.float32)
    for conn in (4, 8):
        out = transfer_instances(w, cues, np.array([True]), min_area=1, connectivity=conn)
        expect = np.zeros((6, 12), np.uint16)
        expect[0:2, 3:5] = 1
        expect[w.astype(bool) & (expect == 0)] = 2
        np.testing.assert_array_equal(out["instances"], expect)
        np.testing.assert_array_equal(out["scores"], np.float32([0.9, 0.5]))
        # Q: x 3,4 and y 0,1. P, 14 px: x sum 8 + 9 + 3 * 8 + (0 + ... + 8) = 77,
        # y sum 0 + 0 + 1 + 2 + 3 + 9 * 4 = 42.
        np.testing.assert_array_equal(out["centers"], np.float32([[3.5, 0.5], [77 / 14, 42 / 14]]))


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


def _expected_by_reasoning(wsss, points, labels, min_area):
    """The pseudo instances the transfer rule should keep, found another way.

    scipy's labelling with a full 3x3 structure (8-connectivity), then for every component a
    plain count of the class's points inside it. Returns a set of (class, mask bytes) and the
    number of components that held two or more points.
    """
    from scipy import ndimage

    kept, crowded = set(), 0
    for c in range(labels.size):
        if not labels[c]:
            continue
        comps, n = ndimage.label(wsss == c + 1, structure=np.ones((3, 3)))
        pts = [(int(y), int(x)) for x, y, k, _ in points if int(k) == c]
        for k in range(1, n + 1):
            comp = comps == k
            inside = sum(1 for y, x in pts if comp[y, x])
            crowded += inside >= 2
            if inside == 1 and comp.sum() >= min_area:
                kept.add((c, comp.tobytes()))
    return kept, crowded


def _merge_void(sem):
    """Class mask with void pixels given the largest neighbouring class (touching objects merge)."""
    import cv2

    fg = np.where(sem == 255, 0, sem)
    return np.where(sem == 255, cv2.dilate(fg, np.ones((3, 3), np.uint8)), sem).astype(np.uint8)


def test_transfer_on_demo_data_keeps_exactly_the_one_point_components(demo_root):
    from bestie_labels.datasets import open_dataset
    from bestie_labels.formats.points import read_points

    ds = open_dataset(demo_root, split="train")
    assert ds.points_dir is not None
    n_kept = n_crowded = 0
    for rec in ds.records:
        gt = ds.load_gt(rec)
        pts = read_points(ds.points_dir / f"{rec.image_id}.txt", rec.height, rec.width, ds.num_classes)
        for wsss in (gt.semantic(), _merge_void(gt.semantic())):
            for min_area in (1, 50):
                out = transfer_instances(wsss, pts, rec.labels, min_area=min_area)
                got = {(int(c), (out["instances"] == m + 1).tobytes()) for m, c in enumerate(out["classes"])}
                expect, crowded = _expected_by_reasoning(wsss, pts, rec.labels, min_area)
                assert got == expect, rec.image_id
                assert len(got) == out["classes"].size  # no instance lost to a duplicate mask
                n_kept += len(expect)
                n_crowded += crowded
                # Centroid centers and the cue's confidence as score (demo points have conf 1).
                ys, xs = np.mgrid[: rec.height, : rec.width]
                for m in range(out["classes"].size):
                    sel = out["instances"] == m + 1
                    np.testing.assert_allclose(out["centers"][m], [xs[sel].mean(), ys[sel].mean()], atol=1e-3)
                np.testing.assert_array_equal(out["scores"], np.ones(out["classes"].size))
    # The data exercise both outcomes: accepted components and components with several points.
    assert n_kept > 0 and n_crowded > 0


def test_transfer_with_gt_masks_and_points_recovers_the_gt_instances(demo_root):
    """GT instance masks (gt_to_pseudo) with their own points: transfer with the GT instance map
    as a one-class-per-instance WSSS keeps every instance of at least min_area pixels."""
    from bestie_labels.datasets import open_dataset
    from bestie_labels.formats.points import read_points

    ds = open_dataset(demo_root, split="train")
    for rec in ds.records[:4]:
        gt = ds.load_gt(rec)
        ref = gt_to_pseudo(gt, center="point")
        m = ref["classes"].size
        assert 0 < m < 255
        # The deepest-pixel rule is the demo's: the GT point files hold the same points.
        pts = read_points(ds.points_dir / f"{rec.image_id}.txt", rec.height, rec.width, ds.num_classes)
        np.testing.assert_array_equal(ref["centers"], pts[:, :2])
        np.testing.assert_array_equal(ref["classes"], pts[:, 2])
        # Each instance its own "class" so that touching instances stay apart.
        wsss = ref["instances"].astype(np.uint8)
        cues = np.concatenate([ref["centers"], np.arange(m)[:, None], np.ones((m, 1))], 1).astype(np.float32)
        out = transfer_instances(wsss, cues, np.ones(m, bool), min_area=1, connectivity=8, center="point")
        # Instance pixels of a component-split instance: only the piece holding the point survives.
        for k in range(m):
            mine = out["instances"] == k + 1
            assert out["classes"][k] == k
            assert mine.any() and (ref["instances"][mine] == k + 1).all()
            x, y = ref["centers"][k].astype(int)
            assert mine[y, x]


def test_cue_pixels_truncates_and_clips_to_the_image():
    from bestie_labels.algorithms.knowledge_transfer import cue_pixels

    cues = np.array([[-3.7, 0.9, 0, 1], [9.99, 4.2, 1, 1], [0.5, 20.0, 0, 1], [4.0, -2.5, 0, 1],
                     [12.0, 2.0, 0, 1], [8.5, 3.7, 0, 1]], np.float32)
    rows, cols = cue_pixels(cues, height=5, width=10)
    assert cols.tolist() == [0, 9, 0, 4, 9, 8]
    assert rows.tolist() == [0, 4, 4, 0, 2, 3]
    assert rows.dtype == cols.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.uint16, np.int8, np.int32, np.int64, np.float32])
def test_transfer_is_the_same_for_any_mask_dtype(dtype):
    """A class mask of another dtype (an imported WSSS) gives the uint8 result; values that are
    no class (-1 inside component A, 1.5 next to it) are background, not part of A."""
    w, cues, labels = _scene()
    w = (w * (w != 255)).astype(np.uint8)
    m = w.astype(dtype)
    if np.issubdtype(dtype, np.signedinteger):
        m[1, 1] = -1
        w[1, 1] = 0
    if np.issubdtype(dtype, np.floating):
        m[5, 2] = 1.5  # touches A (rows 1-4): read as class 0 it would join A
    ref = transfer_instances(w, cues, labels, min_area=5)
    out = transfer_instances(m, cues, labels, min_area=5)
    assert sorted(out) == sorted(ref)
    for k in ref:
        assert out[k].dtype == ref[k].dtype
        np.testing.assert_array_equal(out[k], ref[k])


def test_transfer_without_instances_keeps_the_documented_dtypes():
    w, cues, labels = _scene()
    for c in (cues[:0], cues[[0]]):  # no cue at all; one cue in A, under min_area: nothing kept
        out = transfer_instances(w, c, labels, min_area=500)
        assert out["instances"].dtype == np.uint16 and out["instances"].shape == (20, 30) and not out["instances"].any()
        assert (out["classes"].dtype, out["classes"].shape) == (np.int32, (0,))
        assert (out["centers"].dtype, out["centers"].shape) == (np.float32, (0, 2))
        assert (out["scores"].dtype, out["scores"].shape) == (np.float32, (0,))


def test_transfer_cueless_keep_adds_components_without_a_cue():
    w, cues, labels = _scene()
    out = transfer_instances(w, cues, labels, min_area=5, cueless="keep")
    # C (rows 8..11, cols 1..4, no cue) joins class 0 after F and A (first pixel (8, 1)); B (two
    # cues) and D (too small) stay out; G's class is not labelled.
    np.testing.assert_array_equal(out["classes"], [0, 0, 0, 1])
    assert (out["instances"][8:12, 1:5] == 3).all() and (out["instances"] == 3).sum() == 16
    assert out["instances"][1:5, 10:15].max() == 0 and out["instances"][15:19, 20:25].max() == 0
    np.testing.assert_allclose(out["scores"], [0.6, 0.8, 0.0, 0.4])
    np.testing.assert_allclose(out["centers"][2], [2.5, 9.5])
    # With point centers a cueless instance keeps its centroid (it has no point).
    pt = transfer_instances(w, cues, labels, min_area=5, cueless="keep", center="point")
    np.testing.assert_allclose(pt["centers"], [[22, 2], [4.9, 4.9], [2.5, 9.5], [11, 9]], atol=1e-6)


def test_transfer_cueless_keep_without_any_cue():
    w = np.zeros((6, 6), np.uint8)
    w[1:4, 1:4] = 1
    out = transfer_instances(w, np.zeros((0, 4), np.float32), np.array([True]), min_area=1, cueless="keep")
    np.testing.assert_array_equal(out["classes"], [0])
    assert (out["instances"] == 1).sum() == 9 and out["scores"].tolist() == [0.0]
    assert transfer_instances(w, np.zeros((0, 4), np.float32), np.array([True]), min_area=1)["classes"].size == 0


def test_transfer_multi_cue_split_gives_each_pixel_to_the_nearest_cue():
    w, cues, labels = _scene()
    out = transfer_instances(w, cues, labels, min_area=5, multi_cue="split")
    # B (rows 1..4, cols 10..14) splits between its cues at pixels (2, 11) and (3, 13): by hand,
    # cols 10-11 and (1, 12), (2, 12) go to the first, (3, 12), (4, 12) and cols 13-14 to the second.
    np.testing.assert_array_equal(out["classes"], [0, 0, 0, 0, 1])
    part = np.zeros((4, 5), np.uint16)
    part[:, :2] = 3
    part[:2, 2] = 3
    part[2:, 2] = 4
    part[:, 3:] = 4
    np.testing.assert_array_equal(out["instances"][1:5, 10:15], part)
    np.testing.assert_allclose(out["scores"], [0.6, 0.8, 0.9, 0.7, 0.4])
    np.testing.assert_allclose(out["centers"][2:4], [[10.8, 2.3], [13.2, 2.7]], atol=1e-5)


def test_transfer_split_ties_go_to_the_first_cue_and_small_parts_drop():
    w = np.zeros((3, 7), np.uint8)
    w[1, :] = 1  # one row of 7 px; cues at cols 1 and 5, col 3 is equidistant
    cues = np.array([[5, 1, 0, 0.5], [1, 1, 0, 0.9]], np.float32)
    out = transfer_instances(w, cues, np.array([True]), min_area=1, multi_cue="split")
    np.testing.assert_array_equal(out["instances"][1], [1, 1, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(out["scores"], [0.9, 0.5])
    # min_area applies to the parts: 3 px and 4 px.
    big = transfer_instances(w, cues, np.array([True]), min_area=4, multi_cue="split")
    np.testing.assert_array_equal(big["instances"][1], [0, 0, 0, 1, 1, 1, 1])


def test_transfer_rejects_unknown_modes():
    w, cues, labels = _scene()
    with pytest.raises(ValueError, match="cueless"):
        transfer_instances(w, cues, labels, cueless="maybe")
    with pytest.raises(ValueError, match="multi_cue"):
        transfer_instances(w, cues, labels, multi_cue="merge")


def test_split_ignores_cues_of_other_classes_and_of_other_components():
    """Only the component's own cues of its class share its pixels: a class-1 cue lying in the
    middle of a class-0 component, and a class-0 cue in another component, take none."""
    w = np.zeros((3, 12), np.uint8)
    w[1, 0:7] = 1   # component of class 0, cols 0..6
    w[1, 9:12] = 1  # another class-0 component, cols 9..11
    cues = np.array([[0, 1, 0, 0.9], [6, 1, 0, 0.8], [3, 1, 1, 0.7], [10, 1, 0, 0.6]], np.float32)
    out = transfer_instances(w, cues, np.array([True, True]), min_area=1, multi_cue="split")
    # cols 0..3 nearest to col 0 (col 3: a tie, to the cue listed first), cols 4..6 to col 6
    np.testing.assert_array_equal(out["instances"][1], [1, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 3])
    np.testing.assert_array_equal(out["classes"], [0, 0, 0])
    np.testing.assert_allclose(out["scores"], [0.9, 0.8, 0.6])
    assert out["classes"].dtype == np.int32 and out["scores"].dtype == np.float32
    assert out["centers"].dtype == np.float32


def test_two_split_components_and_one_pixel_instances():
    """Parts of two split components get their own ids; min_area 0 or 1 keeps a 1-px instance;
    a single cue is an instance."""
    w = np.zeros((5, 9), np.uint8)
    w[1, 0:4] = 1  # split between cols 0 and 3
    w[3, 0:4] = 1  # split between cols 0 and 3
    w[1, 8] = 1    # a 1-px component with one cue
    cues = np.array([[0, 1, 0, 0.9], [3, 1, 0, 0.8], [0, 3, 0, 0.7], [3, 3, 0, 0.6], [8, 1, 0, 0.5]], np.float32)
    for min_area in (0, 1):
        out = transfer_instances(w, cues, np.array([True]), min_area=min_area, multi_cue="split")
        np.testing.assert_array_equal(out["instances"][1], [1, 1, 2, 2, 0, 0, 0, 0, 3])
        np.testing.assert_array_equal(out["instances"][3], [4, 4, 5, 5, 0, 0, 0, 0, 0])
        np.testing.assert_allclose(out["scores"], [0.9, 0.8, 0.5, 0.7, 0.6])
    assert transfer_instances(w, cues, np.array([True]), min_area=2, multi_cue="split")["classes"].size == 4
    one = transfer_instances(w, cues[4:], np.array([True]), min_area=1)
    np.testing.assert_array_equal(one["classes"], [0])
    np.testing.assert_allclose(one["centers"], [[8, 1]])
