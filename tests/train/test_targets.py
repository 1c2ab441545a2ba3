import math

import numpy as np
import pytest
import torch

from bestie_train.grouping import group_pixels
from bestie_train.targets import _targets_dense, kernel_radius, make_targets

E = math.exp


def test_kernel_radius_gives_6_sigma_plus_3():
    assert 2 * kernel_radius(6) + 1 == 39
    assert 2 * kernel_radius(8) + 1 == 51
    assert 2 * kernel_radius(1) + 1 == 9
    # non-integer sigma: round(3 sigma + 1), not its integer part
    assert kernel_radius(1.9) == 7   # 6.7
    assert kernel_radius(2.3) == 8   # 7.9
    assert kernel_radius(0.5) == 2   # 2.5 rounds half to even


def test_gaussian_is_truncated_at_the_kernel_radius():
    # sigma 1.9: radius round(6.7) = 7, so the heatmap is nonzero 7 px from the center, 0 at 8
    inst = torch.zeros(1, 30, dtype=torch.long)
    inst[0, :] = 1
    t = make_targets(inst, torch.tensor([[10.0, 0.0]]), torch.tensor([0]), num_classes=1, sigma=1.9)
    row = t["center"][0, 0]
    assert float(row[17]) == pytest.approx(E(-49 / (2 * 1.9 ** 2)), rel=1e-5)
    assert float(row[3]) == pytest.approx(E(-49 / (2 * 1.9 ** 2)), rel=1e-5)
    assert float(row[18]) == 0.0 and float(row[2]) == 0.0


def test_two_touching_instances_same_class():
    inst = torch.zeros(10, 12, dtype=torch.long)
    inst[2:6, 1:5] = 1  # centroid (x 2.5, y 3.5): rounds (half to even) to (2, 4)
    inst[2:6, 5:9] = 2  # touches instance 1; centroid (6.5, 3.5) rounds to (6, 4)
    centers = torch.tensor([[2.5, 3.5], [6.5, 3.5]])
    t = make_targets(inst, centers, torch.tensor([0, 0]), num_classes=2, sigma=1.0)
    c = t["center"]
    assert c.shape == (2, 10, 12) and c.dtype == torch.float32
    assert c[1].abs().sum() == 0
    expect = {  # (y, x): exp(-(dx^2 + dy^2) / 2), max over the two instances
        (4, 2): 1.0, (4, 6): 1.0,
        (4, 3): E(-0.5),          # 1 from the first, 3 from the second
        (4, 4): E(-2.0),          # 2 from both: the max, not the sum
        (5, 6): E(-0.5),
        (3, 5): E(-1.0),          # (1, 1) from the second
        (4, 10): E(-8.0),         # dx = 4 = R: last kernel column
        (4, 11): 0.0,             # dx = 5 > R: outside the 9x9 kernel
        (0, 2): E(-8.0),          # dy = -4
        (9, 2): 0.0,              # dy = 5
        (0, 0): E(-(4 + 16) / 2), # dx = -2, dy = -4 from the first
    }
    for (y, x), v in expect.items():
        assert c[0, y, x].item() == pytest.approx(v, rel=1e-6, abs=1e-12), (y, x)

    off, wgt = t["offset"], t["weight"]
    assert off.shape == (2, 10, 12) and wgt.shape == (10, 12)
    assert off[:, 2, 1].tolist() == [1.5, 1.5]      # (3.5 - 2, 2.5 - 1)
    assert off[:, 5, 4].tolist() == [-1.5, -1.5]    # first instance, its last pixel
    assert off[:, 5, 5].tolist() == [-1.5, 1.5]     # second instance, across the seam
    assert off[:, 2, 8].tolist() == [1.5, -1.5]
    assert off[:, 0, 0].tolist() == [0.0, 0.0]      # outside instances
    assert off[:, 6, 3].tolist() == [0.0, 0.0]
    assert wgt.sum().item() == 32 and wgt[2:6, 1:9].min().item() == 1 and wgt[6].sum() == 0


def test_instance_cut_by_the_border():
    inst = torch.zeros(30, 40, dtype=torch.long)
    inst[0:4, 30:40] = 1  # touches the top and right borders; centroid (34.5, 1.5) -> (34, 2)
    t = make_targets(inst, torch.tensor([[34.5, 1.5]]), torch.tensor([1]), num_classes=2, sigma=6.0)
    c = t["center"]
    assert c[0].abs().sum() == 0
    g = lambda dx, dy: E(-(dx * dx + dy * dy) / 72.0)  # noqa: E731
    assert c[1, 2, 34].item() == 1.0
    assert c[1, 0, 39].item() == pytest.approx(g(5, -2))       # exp(-29/72)
    assert c[1, 0, 39].item() == pytest.approx(0.668461, abs=1e-6)
    assert c[1, 21, 34].item() == pytest.approx(g(0, 19))      # R = 19: last kernel row
    assert c[1, 22, 34].item() == 0.0
    assert c[1, 2, 15].item() == pytest.approx(g(-19, 0))
    assert c[1, 2, 14].item() == 0.0
    # The visible part of the kernel is rows dy = -2..19 and columns dx = -19..5.
    gy = sum(E(-d * d / 72.0) for d in range(-2, 20))
    gx = sum(E(-d * d / 72.0) for d in range(-19, 6))
    assert c[1].sum().item() == pytest.approx(gy * gx, rel=1e-5)
    assert (c[1, 22:] == 0).all() and (c[1, :, :15] == 0).all()
    off = t["offset"]
    assert off[:, 0, 39].tolist() == [1.5, -4.5]
    assert off[:, 3, 30].tolist() == [-1.5, 4.5]
    assert t["weight"].sum().item() == 40


def test_instance_without_pixels_draws_no_gaussian():
    inst = torch.zeros(8, 8, dtype=torch.long)
    inst[1:3, 1:3] = 1  # instance 2 has no pixel (e.g. cropped away)
    t = make_targets(inst, torch.tensor([[1.5, 1.5], [6.0, 6.0]]), torch.tensor([0, 1]), 2, sigma=1.0)
    assert t["center"][1].sum() == 0
    assert t["center"][0, 2, 2].item() == 1.0  # round(1.5) = 2


def test_no_instances_and_bad_ids():
    t = make_targets(torch.zeros(5, 6, dtype=torch.long), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 3)
    assert t["center"].shape == (3, 5, 6) and t["center"].sum() == 0
    assert t["offset"].abs().sum() == 0 and t["weight"].sum() == 0
    with pytest.raises(ValueError, match="instance id 2 but only 1 centers"):
        make_targets(torch.tensor([[0, 2]]), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1)


def _shapes_map():
    """A 40x50 map: touching rectangles, an L shape (centroid outside it), a disc at the border."""
    inst = np.zeros((40, 50), np.int64)
    inst[5:15, 5:20] = 1
    inst[5:15, 20:30] = 2
    inst[15:25, 5:12] = 3
    inst[20:38, 30:34] = 4
    inst[34:38, 34:48] = 4   # L shape
    yy, xx = np.mgrid[:40, :50]
    inst[(yy - 0) ** 2 + (xx - 45) ** 2 < 36] = 5
    return inst


def _centroids(inst, n):
    ys, xs = np.mgrid[: inst.shape[0], : inst.shape[1]]
    return np.array([[xs[inst == k].mean(), ys[inst == k].mean()] for k in range(1, n + 1)], np.float32)


def test_grouping_the_targets_gives_the_instances_back():
    inst = _shapes_map()
    centers = _centroids(inst, 5)
    t = make_targets(torch.from_numpy(inst), torch.from_numpy(centers), torch.tensor([0, 0, 1, 0, 2]), 3)
    ids = group_pixels(t["offset"], torch.from_numpy(centers), t["weight"] > 0)
    assert ids.dtype == torch.long
    np.testing.assert_array_equal(ids.numpy(), inst)
    # Same with small chunks (the chunking is a memory bound, not a result parameter).
    ids2 = group_pixels(t["offset"], torch.from_numpy(centers), t["weight"] > 0, chunk_pixels=37)
    np.testing.assert_array_equal(ids2.numpy(), inst)


def test_group_pixels_eq1_by_hand():
    # 1x4 image; centers at x = 0 and x = 3 (y = 0).
    offset = torch.zeros(2, 1, 4)
    offset[1] = torch.tensor([0.0, 2.0, -2.0, 0.0])  # pixel 1 points at x 3, pixel 2 at x 0
    centers = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert group_pixels(offset, centers, mask).tolist() == [[1, 2, 1, 0]]
    # Equal distances go to the lower index; no center -> all zero.
    offset[1] = torch.tensor([1.5, 0.5, -0.5, -1.5])
    assert group_pixels(offset, centers, mask).tolist() == [[1, 1, 1, 0]]
    assert group_pixels(offset, torch.zeros(0, 2), mask).tolist() == [[0, 0, 0, 0]]


def test_no_instance_gives_zero_targets():
    empty = torch.zeros(40, 50, dtype=torch.long)
    t = make_targets(empty, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 3)
    assert t["center"].shape == (3, 40, 50) and t["offset"].shape == (2, 40, 50)
    for k in ("center", "offset", "weight"):
        assert t[k].abs().sum() == 0


def test_cpu_path_equals_dense_torch_path():
    """CPU tensors go through numpy over instance pixels; CUDA through dense torch. Same values."""
    inst = torch.from_numpy(_shapes_map())
    centers = torch.from_numpy(_centroids(_shapes_map(), 5))
    centers = torch.cat([centers, torch.tensor([[48.0, 39.0]])])  # instance 6: no pixel
    classes = torch.tensor([0, 0, 1, 0, 2, 1])
    for sigma in (6.0, 2.0):
        cpu = make_targets(inst.int(), centers, classes, 3, sigma)
        dense = _targets_dense(inst, centers, classes, 3, sigma)
        for k in ("center", "offset", "weight"):
            assert torch.equal(cpu[k], dense[k]), (k, sigma)
        assert cpu["center"][1].max() == 1.0  # instance 3 drew; instance 6 did not
        assert cpu["center"][1, 39, 48] < 1.0


def test_offset_centers_move_the_offsets_not_the_gaussian():
    """Point supervision (official): the Gaussian at the point, the offsets to the centroid."""
    inst = torch.zeros(9, 12, dtype=torch.long)
    inst[2:5, 3:9] = 1  # rows 2..4, cols 3..8: centroid (5.5, 3.0)
    point = torch.tensor([[4.0, 2.0]])
    centroid = torch.tensor([[5.5, 3.0]])
    t = make_targets(inst, point, torch.tensor([0]), 1, sigma=1.0, offset_centers=centroid)
    assert t["center"][0, 2, 4] == 1.0 and t["center"].argmax() == 2 * 12 + 4
    assert t["offset"][0, 2, 3] == 1.0 and t["offset"][1, 2, 3] == 2.5  # (3.0 - 2, 5.5 - 3)
    assert t["offset"][0, 4, 8] == -1.0 and t["offset"][1, 4, 8] == -2.5
    same = make_targets(inst, point, torch.tensor([0]), 1, sigma=1.0)
    assert torch.equal(same["center"], t["center"]) and same["offset"][1, 2, 3] == 1.0  # to the point
    dense = _targets_dense(inst, point, torch.tensor([0]), 1, 1.0, centroid)
    for k in ("center", "offset", "weight"):
        assert torch.equal(dense[k], t[k]), k
    with pytest.raises(ValueError, match="offset centers"):
        make_targets(inst, point, torch.tensor([0]), 1, offset_centers=torch.zeros(2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    inst = torch.from_numpy(_shapes_map())
    centers = torch.from_numpy(_centroids(_shapes_map(), 5))
    classes = torch.tensor([0, 0, 1, 0, 2])
    cpu = make_targets(inst, centers, classes, 3)
    gpu = make_targets(inst.cuda(), centers.cuda(), classes.cuda(), 3)
    for k in cpu:
        assert gpu[k].is_cuda
        torch.testing.assert_close(gpu[k].cpu(), cpu[k])
    ids = group_pixels(gpu["offset"], centers.cuda(), gpu["weight"] > 0)
    np.testing.assert_array_equal(ids.cpu().numpy(), inst.numpy())
