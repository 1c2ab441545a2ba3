"""Center NMS, center clustering, Eq. (1) grouping and inference on hand-made outputs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bestie_train.grouping import group_pixels
from bestie_train.centers import cluster_centers, nms_candidates, window_max
from bestie_train.postprocess import predict_instances, region_instances


def offsets_to(h, w, assign):
    """``(2, H, W)`` offsets pointing every pixel of ``assign[k]`` (bool mask) to center k."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    off = torch.zeros(2, h, w)
    for (cx, cy), m in assign:
        off[0][m] = (cy - ys)[m]
        off[1][m] = (cx - xs)[m]
    return off


def test_window_max_is_the_square_max_pool():
    x = torch.randn(3, 17, 23)
    for k in (1, 3, 7, 41):
        ref = F.max_pool2d(x[:, None], k, stride=1, padding=k // 2)[:, 0]
        assert torch.equal(window_max(x, k), ref)
    with pytest.raises(ValueError):
        window_max(x, 4)


def center_nms(heat, **kw):
    """The centers :func:`nms_candidates` finds in one ``(C, H, W)`` heatmap (valid slots only)."""
    cand = nms_candidates(heat[None], **kw)
    v = cand["valid"][0]
    return {"centers": torch.stack([cand["x"][0][v], cand["y"][0][v]], 1),
            "classes": cand["channel"][0][v], "scores": cand["score"][0][v]}


def test_center_nms_kernel_threshold_ties_and_top_k():
    heat = torch.zeros(2, 20, 30)
    heat[0, 4, 3] = 0.9   # (x=3, y=4)
    heat[0, 4, 8] = 0.5   # 5 px to the right of the first
    heat[0, 15, 25] = 0.3  # exactly the threshold: not a center (strict >)
    heat[1, 10, 10] = heat[1, 10, 11] = 0.7  # a plateau: both kept
    r = center_nms(heat, kernel=11, threshold=0.3)
    got = {(int(c), int(x), int(y)): float(s) for c, (x, y), s in zip(r["classes"], r["centers"], r["scores"])}
    assert got == {(0, 3, 4): pytest.approx(0.9), (1, 10, 10): pytest.approx(0.7), (1, 11, 10): pytest.approx(0.7)}
    assert r["scores"][0] == pytest.approx(0.9)  # highest first
    # a 3x3 window no longer reaches from (3,4) to (8,4): the 0.5 peak survives
    r3 = center_nms(heat, kernel=3, threshold=0.3)
    assert (0, 8, 4) in {(int(c), int(x), int(y)) for c, (x, y) in zip(r3["classes"], r3["centers"])}
    assert len(r3["scores"]) == 4
    # a lower threshold admits the 0.3 peak; top_k keeps the highest ones
    assert len(center_nms(heat, kernel=11, threshold=0.29)["scores"]) == 4
    top2 = center_nms(heat, kernel=11, threshold=0.29, top_k=2)
    assert top2["scores"].tolist() == pytest.approx([0.9, 0.7])
    # fixed size: top_k slots, the ones beyond the centers invalid with score -inf
    cand = nms_candidates(heat[None], kernel=11, threshold=0.3, top_k=5)
    assert cand["valid"][0].tolist() == [True, True, True, False, False]
    assert cand["score"][0, 3:].tolist() == [float("-inf")] * 2


def test_group_pixels_with_groups_is_eq1_per_group():
    # one row of 6 pixels, centers at x=0 and x=5 (y=0)
    off = torch.zeros(2, 1, 6)
    off[1, 0, 2] = 2.0   # pixel 2 points at x=4 -> nearest is center 1 (x=5)
    off[1, 0, 3] = -3.0  # pixel 3 points at x=0 -> center 0
    centers = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    one = torch.zeros(2, dtype=torch.long)
    ids = group_pixels(off, centers, center_group=one, pixel_group=torch.zeros(1, 6, dtype=torch.long))
    assert ids[0].tolist() == [1, 1, 2, 1, 2, 2]
    # groups: pixels 0-2 may only use center 0, pixels 3-5 only center 1; pixel 5 not grouped
    pg = torch.tensor([[0, 0, 0, 1, 1, -1]])
    ids = group_pixels(off, centers, center_group=torch.tensor([0, 1]), pixel_group=pg)
    assert ids[0].tolist() == [1, 1, 1, 2, 2, 0]
    # a disabled center (negative group) leaves its group empty
    ids = group_pixels(off, centers, center_group=torch.tensor([0, -1]), pixel_group=pg)
    assert ids[0].tolist() == [1, 1, 1, 0, 0, 0]


def test_one_group_equals_a_mask():
    g = torch.Generator().manual_seed(0)
    off = torch.randn(2, 13, 17, generator=g) * 5
    centers = torch.rand(5, 2, generator=g) * torch.tensor([17.0, 13.0])
    mask = torch.rand(13, 17, generator=g) > 0.3
    ref = group_pixels(off, centers, mask)
    got = group_pixels(off, centers, center_group=torch.zeros(5, dtype=torch.long),
                       pixel_group=torch.where(mask, 0, -1), chunk_pixels=7)
    assert torch.equal(got, ref)


def disc_region_scene(far_x=140, offset_threshold=2.5):
    """One region of class 0 (rows 60..99, every column of a 160-wide image) holding two
    objects: A (x < 80) with center (20, 80) and a heat peak 0.9, B (x >= 80) with center
    (far_x, 80) whose heat is only 0.1 (missed by NMS). Offsets point exactly at the centers,
    so each object has a disc of 21 pixels with ||offset|| < 2.5 (d^2 in {0,1,2,4,5})."""
    h, w = 160, 160
    region = torch.zeros(h, w, dtype=torch.long)
    region[60:100] = 1
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    a = (region > 0) & (xs < 80)
    b = (region > 0) & (xs >= 80)
    off = offsets_to(h, w, [((20, 80), a), ((far_x, 80), b)])
    heat = torch.zeros(1, h, w)
    heat[0][b] = 0.1
    heat[0, 80, 20] = 0.9
    return heat, off, region, a, b


def test_cluster_centers_area_rule():
    heat, off, region, a, b = disc_region_scene()
    heat_at = heat[0] * (region > 0)
    cl = cluster_centers(off[None], region[None], heat_at[None])
    found = {(int(x), int(y)) for x, y, v in zip(cl["x"][0], cl["y"][0], cl["valid"][0]) if v}
    # A's disc: heat at its centroid is 0.9; B's: 0.1 > 0.05. Both discs have 21 pixels.
    assert found == {(20, 80), (140, 80)}
    # radius 3 discs have 25 pixels (d^2 in {0,1,2,4,5,8}): 25 >= 21 + 3, not a cluster
    cl3 = cluster_centers(off[None], region[None], heat_at[None], offset_threshold=3.0)
    assert not cl3["valid"].any()
    # beta 5 admits 25 (16 < 25 < 26)
    cl5 = cluster_centers(off[None], region[None], heat_at[None], offset_threshold=3.0, beta=5)
    assert int(cl5["valid"].sum()) == 2
    # heat at the centroid must exceed 0.05
    cold = heat_at.clone()
    cold[80, 140] = 0.04
    clc = cluster_centers(off[None], region[None], cold[None])
    assert {(int(x), int(y)) for x, y, v in zip(clc["x"][0], clc["y"][0], clc["valid"][0]) if v} == {(20, 80)}


def test_clustering_adds_a_missed_center():
    heat, off, region, a, b = disc_region_scene()
    pc = torch.where(region > 0, 0, -1)
    common = dict(kernel=41, threshold=0.3)
    r0 = region_instances(heat[None], off[None], region[None], pc[None], cluster=False, **common)
    assert int(r0.valid.sum()) == 1  # NMS finds A only; B's pixels join A
    assert int((r0.instances[0] > 0).sum()) == int(region.sum())
    r1 = region_instances(heat[None], off[None], region[None], pc[None], cluster=True, **common)
    v = r1.valid[0]
    assert int(v.sum()) == 2
    ids = torch.nonzero(v).reshape(-1)
    cl = ids[r1.is_cluster[0][ids]]
    assert cl.numel() == 1
    k = int(cl[0])
    assert (int(r1.center_x[0, k]), int(r1.center_y[0, k])) == (140, 80)
    assert torch.equal(r1.instances[0] == k + 1, b)
    assert float(r1.center_score[0, k]) == 1.0  # a clustered center counts 1
    # the clustered center at (100, 80) is 80 px from A's peak: not added (rule: > 100 px)
    heat2, off2, region2, _, _ = disc_region_scene(far_x=100)
    r2 = region_instances(heat2[None], off2[None], region2[None], pc[None], cluster=True, **common)
    assert int(r2.valid.sum()) == 1


def two_blob_outputs():
    """C=2; two class-0 squares and one class-1 square, logits giving known probabilities."""
    h, w = 40, 60
    sem = torch.zeros(3, h, w)
    sem[0] = 5.0  # background elsewhere
    squares = {"a": (0, 2, 2, 12, 12), "b": (0, 2, 30, 12, 40), "c": (1, 25, 10, 35, 20)}
    masks = {}
    for name, (cls, y0, x0, y1, x1) in squares.items():
        m = torch.zeros(h, w, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        masks[name] = m
        sem[:, m] = 0.0
        sem[cls + 1, m] = math.log(6.0)  # class prob 6 / (6 + 1 + 1) = 0.75
    ctr = torch.zeros(2, h, w)
    ctr[0, 7, 7] = 0.8    # a
    ctr[0, 7, 35] = 0.4   # b
    # c has no center above 0.1 -> a whole-region instance (heat max 0.05 there)
    ctr[1, 30, 15] = 0.05
    off = offsets_to(h, w, [((7, 7), masks["a"]), ((35, 7), masks["b"]), ((15, 30), masks["c"])])
    return {"semantic": sem, "center": ctr, "offset": off}, masks


def test_predict_instances_scores_and_empty_regions():
    out, masks = two_blob_outputs()
    r = predict_instances(out, cluster=False)
    assert r["masks"].shape == (3, 40, 60)
    assert r["classes"].tolist() == [0, 0, 1]
    assert r["scores"].tolist() == pytest.approx([0.8 * 0.75, 0.4 * 0.75, 0.05 * 0.75], rel=1e-5)
    assert np.array_equal(r["masks"][0], masks["a"].numpy())
    assert np.array_equal(r["masks"][1], masks["b"].numpy())
    assert np.array_equal(r["masks"][2], masks["c"].numpy())
    # without whole-region instances, c disappears
    r2 = predict_instances(out, cluster=False, empty_regions=False)
    assert r2["classes"].tolist() == [0, 0]
    # regions smaller than min_area are dropped (each square has 100 px)
    assert predict_instances(out, min_area=101)["masks"].shape == (0, 40, 60)
    # a batch dimension of 1 is accepted, and image-level labels clean absent classes
    r3 = predict_instances({k: v[None] for k, v in out.items()}, labels=[True, False], cluster=False,
                           empty_regions=False)
    assert r3["classes"].tolist() == [0, 0]


def test_predict_instances_drops_classes_absent_from_the_image_labels():
    out, masks = two_blob_outputs()
    # class 1 absent: square c's pixels fall back to background (1/8 each, the first argmax),
    # so c, which empty_regions would keep, is gone; class-0 scores are not renormalised
    r = predict_instances(out, labels=[True, False], cluster=False)
    assert r["classes"].tolist() == [0, 0]
    assert r["scores"].tolist() == pytest.approx([0.8 * 0.75, 0.4 * 0.75], rel=1e-5)
    # class 0 absent: only c is left
    r2 = predict_instances(out, labels=np.array([False, True]), cluster=False)
    assert r2["classes"].tolist() == [1]
    assert np.array_equal(r2["masks"][0], masks["c"].numpy())
    assert r2["scores"].tolist() == pytest.approx([0.05 * 0.75], rel=1e-5)


def test_predict_instances_splits_one_region_by_eq1():
    h, w = 20, 60
    sem = torch.zeros(2, h, w)
    sem[1, 5:15, 5:55] = 3.0  # one class-0 region of 500 px
    m = torch.zeros(h, w, dtype=torch.bool)
    m[5:15, 5:55] = True
    left = m.clone()
    left[:, 30:] = False
    right = m & ~left
    ctr = torch.zeros(1, h, w)
    ctr[0, 10, 10] = 0.9
    ctr[0, 10, 50] = 0.7  # 40 px apart: both survive a 41 window (radius 20)
    off = offsets_to(h, w, [((10, 10), left), ((50, 10), right)])
    r = predict_instances({"semantic": sem, "center": ctr, "offset": off}, cluster=False)
    assert len(r["scores"]) == 2
    assert np.array_equal(r["masks"][0], left.numpy()) and np.array_equal(r["masks"][1], right.numpy())
    p = 1 / (1 + math.exp(-3.0))
    assert r["scores"].tolist() == pytest.approx([0.9 * p, 0.7 * p], rel=1e-5)
