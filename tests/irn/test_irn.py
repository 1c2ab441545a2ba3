"""IRN pieces with hand-computed expectations: pair offsets and paths, affinities from a
boundary map, affinity labels from seeds, the random walk, seeds, the instance cut."""

import numpy as np
import pytest
import torch

from bestie_labels.irn.affinity import IGNORE, affinity_labels, boundary_to_affinity
from bestie_labels.irn.infer import cut_instances
from bestie_labels.irn.paths import path_offsets, search_offsets
from bestie_labels.irn.random_walk import random_walk, transition_matrix
from bestie_labels.irn.seeds import cam_seeds, seed_regions

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_search_offsets_radius_2_and_3():
    assert search_offsets(2).tolist() == [[0, 1], [1, -1], [1, 0], [1, 1]]
    # radius 3: |d|^2 < 9 in the half-plane: (0,1) (0,2); dy = 1, 2 with dx -2..2 (the corner
    # (2, 2) has |d|^2 = 8 < 9).
    assert search_offsets(3).tolist() == [[0, 1], [0, 2], [1, -2], [1, -1], [1, 0], [1, 1], [1, 2],
                                          [2, -2], [2, -1], [2, 0], [2, 1], [2, 2]]
    # radius 4: dy = 0: 3; dy = 1, 2: 7 each (dx -3..3); dy = 3: 9 + dx^2 < 16 -> |dx| <= 2: 5.
    assert len(search_offsets(4)) == 22


def test_path_offsets():
    assert path_offsets(0, 2).tolist() == [[0, 0], [0, 1], [0, 2]]
    assert sorted(path_offsets(1, 1).tolist()) == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # (2, 1): distance of (y, x) to the line through (0,0), (2,1) is |2x - y| / sqrt(5) < 1
    # -> |2x - y| <= 2: (0,0) (1,0) (1,1) (2,1) kept; (0,1) (2,0) at distance 2/sqrt(5)... kept too.
    got = sorted(map(tuple, path_offsets(2, 1).tolist()))
    assert got == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]


def test_boundary_to_affinity_row():
    # 1 x 4 image, boundary on pixel 2; radius 2 -> offsets (0,1) (1,-1) (1,0) (1,1).
    b = torch.tensor([[[0.0, 0.2, 1.0, 0.1]]])
    a = boundary_to_affinity(b, 2)[0]
    # (0,1): pairs (0,1) -> 1 - 0.2, (1,2) -> 0, (2,3) -> 0, (3, out) -> 0
    assert torch.allclose(a[0, 0], torch.tensor([0.8, 0.0, 0.0, 0.0]))
    # the other offsets go to the next row, outside the image: 0 everywhere
    assert float(a[1:].abs().sum()) == 0.0


def test_boundary_to_affinity_path_max():
    # 3 x 3, only the centre is a boundary: the pair (0,0)-(2,2) has its path through it.
    b = torch.zeros(1, 3, 3)
    b[0, 1, 1] = 0.9
    a = boundary_to_affinity(b, 3)[0]
    k = search_offsets(3).tolist().index([2, 0])
    assert a[k, 0, 1] == pytest.approx(0.1)  # (0,1) -> (2,1) crosses the centre
    assert a[k, 0, 0] == pytest.approx(1.0)  # (0,0) -> (2,0) does not
    k = search_offsets(3).tolist().index([0, 2])
    assert a[k, 0, 0] == pytest.approx(1.0) and a[k, 1, 0] == pytest.approx(0.1)


def test_affinity_labels():
    # regions: bg bg | region 1 | ignore ; radius 2, offset (0, 1) is index 0
    r = torch.tensor([[[0, 0, 1, IGNORE]]])
    bg, fg, neg = affinity_labels(r, 2)
    assert bg[0, 0, 0].tolist() == [True, False, False, False]
    assert neg[0, 0, 0].tolist() == [False, True, False, False]
    assert fg[0, 0, 0].tolist() == [False, False, False, False]
    r = torch.tensor([[[2, 2, 3, 3]]])  # two regions of foreground
    bg, fg, neg = affinity_labels(r, 2)
    assert fg[0, 0, 0].tolist() == [True, False, True, False]
    assert neg[0, 0, 0].tolist() == [False, True, False, False]
    assert not bg.any()


def test_transition_matrix_and_random_walk_by_hand():
    # 1 x 3, no boundary, radius 2: each pixel averages itself and its row neighbours.
    aff = boundary_to_affinity(torch.zeros(1, 1, 3), 2)[0]
    m = transition_matrix(aff, 2, beta=10).to_dense()
    want = torch.tensor([[1 / 2, 1 / 2, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 2, 1 / 2]])
    assert torch.allclose(m, want)
    x = torch.tensor([[[1.0, 0.0, 0.0]]])
    one = random_walk(x, aff, 2, beta=10, exp_times=0)  # 2^0 = 1 step
    assert torch.allclose(one[0, 0], torch.tensor([1 / 2, 1 / 3, 0.0]))
    two = random_walk(x, aff, 2, beta=10, exp_times=1)  # 2 steps: (1/2+1/3)/2, (1/2+1/3)/3, (1/3)/2
    assert torch.allclose(two[0, 0], torch.tensor([5 / 12, 5 / 18, 1 / 6]))


def test_random_walk_stops_at_boundary():
    b = torch.tensor([[[0.0, 1.0, 0.0, 0.0]]])
    aff = boundary_to_affinity(b, 2)[0]
    x = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    y = random_walk(x, aff, 2, beta=1, exp_times=4)
    assert torch.allclose(y[0, 0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    # beta sharpens: affinity 0.5 between 0 and 1, beta 1 vs 3
    b = torch.tensor([[[0.0, 0.5]]])
    aff = boundary_to_affinity(b, 2)[0]
    m1 = transition_matrix(aff, 2, beta=1).to_dense()
    m3 = transition_matrix(aff, 2, beta=3).to_dense()
    assert torch.allclose(m1[1], torch.tensor([0.5 / 1.5, 1 / 1.5]))
    assert torch.allclose(m3[1], torch.tensor([0.125 / 1.125, 1 / 1.125]))


def test_cam_seeds():
    maps = np.array([[[0.9, 0.2, 0.01, 0.5]], [[0.1, 0.6, 0.02, 0.9]], [[1.0, 1.0, 1.0, 1.0]]], np.float32)
    labels = np.array([True, True, False])
    s = cam_seeds(maps, labels, fg_threshold=0.3, bg_threshold=0.05)
    # px0: class 0 (0.9); px1: class 1 (0.6); px2: max 0.02 <= 0.05 -> bg; px3: class 1 (0.9)
    assert s.tolist() == [[1, 2, 0, 2]]
    s = cam_seeds(maps, labels, fg_threshold=0.7, bg_threshold=0.05)
    assert s.tolist() == [[1, 255, 0, 2]]
    assert cam_seeds(maps, np.zeros(3, bool), 0.3, 0.05).tolist() == [[0, 0, 0, 0]]
    # ties go to the lower label, as IRN's arg-max over [threshold, maps]: a pixel exactly at
    # bg_threshold is background, one exactly at fg_threshold is not a seed
    tie = np.array([[[0.5, 0.75, 0.25]]], np.float32)
    assert cam_seeds(tie, np.array([True]), fg_threshold=0.75, bg_threshold=0.5).tolist() == [[0, 255, 0]]


def test_seed_regions():
    seeds = np.array([[1, 1, 0, 1, 255],
                      [0, 0, 0, 1, 2]], np.uint8)
    assert seed_regions(seeds, "class").tolist() == [[1, 1, 0, 1, -1], [0, 0, 0, 1, 2]]
    r = seed_regions(seeds, "instance")
    # class 0: components {(0,0),(0,1)} and {(0,3),(1,3)}; class 1: {(1,4)}
    assert r[0, 0] == r[0, 1] and r[0, 3] == r[1, 3] and r[0, 0] != r[0, 3]
    assert sorted({r[0, 0], r[0, 3], r[1, 4]}) == [1, 2, 3]
    assert r[0, 4] == -1 and r[0, 2] == 0


def test_cut_instances_separates_two_blobs():
    mask = np.zeros((5, 9), np.uint8)
    mask[1:4, 1:8] = 1  # one region of class 0 ...
    b = np.zeros((5, 9), np.float32)
    b[:, 4] = 0.9  # ... with a boundary down its middle
    out = cut_instances(mask, b, threshold=0.5, min_part=2)
    assert (out[1:4, 4] == 255).all()
    assert (out[1:4, 1:4] == 1).all() and (out[1:4, 5:8] == 1).all()
    assert (out[0] == 0).all()
    # a single part (min_part too large for the right half) is left as it is
    assert (cut_instances(mask, b, threshold=0.5, min_part=10) == mask).all()


def test_miou_by_hand():
    from bestie_labels.evaluation.miou import confusion, miou_summary

    gt = np.array([[0, 0, 1, 1, 255, 2]], np.uint8)
    pred = np.array([[0, 1, 1, 255, 2, 0]], np.uint8)
    conf = confusion(pred, gt, 2)
    # GT void ignored; pred 255 counts as background.
    # bg: gt {0,1} pred {0,1}; gt bg pixels: px0 (pred 0), px1 (pred 1); pred bg: px0, px3, px5
    # IoU bg = 1 / (2 + 3 - 1) = 1/4; class 0 (index 1): TP px2, GT px2,px3, pred px1,px2 -> 1/3
    # class 1 (index 2): GT px5, pred none (px4 is void in GT) -> 0
    s = miou_summary(conf, ["a", "b"])
    assert s["per_class"] == {"background": 25.0, "a": 33.33, "b": 0.0}
    assert s["mIoU"] == pytest.approx(100 * (1 / 4 + 1 / 3 + 0) / 3, abs=0.01)
    assert s["pixels"] == 5
    # a class with neither GT nor prediction is left out of the mean
    s = miou_summary(confusion(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), 3), ["a", "b", "c"])
    assert s["mIoU"] == 100.0 and s["per_class"]["c"] is None


def test_split_at_peaks():
    from bestie_labels.irn.seeds import split_at_peaks

    regions = np.zeros((3, 9), np.int32)
    regions[:, 1:8] = 4  # one seed component of class 0 ...
    regions[0, 0] = -1
    pam = np.zeros((1, 3, 9), np.float32)
    pam[0, :, 1:8] = [0.9, 0.6, 0.3, 0.1, 0.3, 0.6, 0.9]  # ... with two peaks, a valley at x = 4
    peaks = np.array([[1, 1, 0, 0.9], [7, 1, 0, 0.9]], np.float32)
    out = split_at_peaks(regions, peaks, pam, band=0)
    left, right = out[1, 1], out[1, 7]
    assert left != right and min(left, right) > 4  # new numbers above the existing ones
    assert (out[:, 1:4] == left).all() and (out[:, 5:8] == right).all()
    assert (out[:, 4] == -1).all() and out[0, 0] == -1 and (out[:, 8] == 0).all()
    assert (split_at_peaks(regions, peaks, pam, band=1)[:, 3:6] == -1).all()
    # one peak: nothing to split
    np.testing.assert_array_equal(split_at_peaks(regions, peaks[:1], pam), regions)


def test_ridge_lines_by_hand():
    from bestie_labels.irn.watershed import ridge_lines

    labels = np.array([[1, 1, 2, 2]])
    # the higher pixel of the differing pair is the line
    assert ridge_lines(labels, np.array([[0.0, 1, 3, 0]])).tolist() == [[False, False, True, False]]
    assert ridge_lines(labels, np.array([[0.0, 3, 1, 0]])).tolist() == [[False, True, False, False]]
    # a tie: the higher label
    assert ridge_lines(labels, np.zeros((1, 4))).tolist() == [[False, False, True, False]]
    # diagonal neighbours are separated too; 0 (outside) is never a line nor a neighbour label
    diag = np.array([[1, 0], [0, 2]])
    assert ridge_lines(diag, np.array([[5.0, 0], [0, 1]])).tolist() == [[True, False], [False, False]]
    anti = np.array([[0, 1], [2, 0]])
    assert ridge_lines(anti, np.array([[0.0, 1], [5, 0]])).tolist() == [[False, False], [True, False]]
    assert ridge_lines(np.array([[1, 0, 2]]), np.zeros((1, 3))).tolist() == [[False] * 3]


def test_watershed_split_draws_the_line_on_the_ridge():
    from bestie_labels.irn.watershed import watershed_split

    elevation = np.tile(np.array([0, 1, 2, 3, 2, 1, 0], np.float32), (3, 1))
    markers = np.zeros((3, 7), np.int32)
    markers[1, 0], markers[1, 6] = 1, 2
    mask = np.ones((3, 7), bool)
    mask[:, 6] = [True, True, False]
    out = watershed_split(elevation, markers, mask)
    assert (out[:, 3] == 0).all() and (out[:, :3] == 1).all()
    assert (out[:2, 4:] == 2).all() and (out[2, 4:6] == 2).all() and out[2, 6] == 0
