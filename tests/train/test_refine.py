"""Self-refinement on hand-made outputs: Eq. (1) grouping inside WSSS regions, Eq. (2) weights."""

import math

import numpy as np
import pytest
import torch

from bestie_labels.algorithms.components import component_map
from bestie_train.targets import make_targets
from bestie_train.refine import refine_targets


def offsets_to(h, w, assign):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    off = torch.zeros(2, h, w)
    for (cx, cy), m in assign:
        off[0][m] = (cy - ys)[m]
        off[1][m] = (cx - xs)[m]
    return off


def make_batch(wsss, labels, points=None, point_classes=None):
    wsss = torch.as_tensor(wsss, dtype=torch.long)
    labels = torch.as_tensor(labels, dtype=torch.float32)
    comps = torch.stack([torch.from_numpy(component_map(w.numpy(), l.numpy() > 0))
                         for w, l in zip(wsss, labels)])
    batch = {"wsss": wsss, "components": comps, "labels": labels}
    if points is not None:
        batch["points"] = torch.as_tensor(points, dtype=torch.float32)
        batch["point_classes"] = torch.as_tensor(point_classes, dtype=torch.long)
    return batch


def two_object_scene():
    """One WSSS region of class 1 (0-based; C=2), rows 10..29, cols 5..74 of a 40x80 image.
    Left half (x < 40) is an object centred at (20, 20) with a 0.8 peak and class probability
    0.75; right half is one centred at (60, 20) with a 0.6 peak and class probability 0.5."""
    h, w, c = 40, 80, 2
    wsss = torch.zeros(1, h, w, dtype=torch.long)
    wsss[0, 10:30, 5:75] = 2
    region = wsss[0] == 2
    xs = torch.arange(w).view(1, -1).expand(h, w)
    left, right = region & (xs < 40), region & (xs >= 40)
    sem = torch.zeros(1, c + 1, h, w)
    sem[0, 0] = 4.0
    sem[0, :, region] = 0.0
    sem[0, 2, left] = math.log(6.0)   # 6 / (6 + 1 + 1) = 0.75
    sem[0, 2, right] = math.log(2.0)  # 2 / (2 + 1 + 1) = 0.5
    ctr = torch.zeros(1, c, h, w)
    ctr[0, 1, 20, 20] = 0.8
    ctr[0, 1, 20, 60] = 0.6
    off = offsets_to(h, w, [((20, 20), left), ((60, 20), right)])[None]
    outputs = {"semantic": sem, "center": ctr, "offset": off}
    return outputs, make_batch(wsss, [[0, 1]]), left, right


def test_refined_weights_follow_eq2():
    outputs, batch, left, right = two_object_scene()
    r = refine_targets(outputs, batch, cluster=False)
    wgt = r["weight"][0]
    assert torch.allclose(wgt[left], torch.full_like(wgt[left], 0.8 * 0.75), atol=1e-6)
    assert torch.allclose(wgt[right], torch.full_like(wgt[right], 0.6 * 0.5), atol=1e-6)
    assert (wgt[~(left | right)] == 0).all()
    # center / offset maps are make_targets of the two refined instances
    inst = left.long() + 2 * right.long()
    ref = make_targets(inst, torch.tensor([[20.0, 20.0], [60.0, 20.0]]), torch.tensor([1, 1]), 2)
    assert torch.allclose(r["center"][0], ref["center"])
    assert torch.allclose(r["offset"][0], ref["offset"])
    assert float(r["center"][0, 1, 20, 20]) == pytest.approx(1.0)
    assert float(r["center"][0, 0].abs().sum()) == 0.0


def test_weight_is_clipped_to_one():
    outputs, batch, left, right = two_object_scene()
    outputs["center"][0, 1, 20, 20] = 2.0  # 2.0 * 0.75 > 1
    r = refine_targets(outputs, batch, cluster=False)
    assert torch.allclose(r["weight"][0][left], torch.ones(int(left.sum())))


def test_threshold_classes_and_small_regions():
    outputs, batch, left, right = two_object_scene()
    outputs["center"][0, 1, 20, 60] = 0.3  # not > 0.3: the right object has no center
    r = refine_targets(outputs, batch, cluster=False)
    # every pixel of the region joins the left center (Eq. 1 inside the region)
    region = left | right
    assert torch.allclose(r["weight"][0][region], torch.full((int(region.sum()),), 0.8 * (0.75 + 0.5) / 2))
    # a class missing from the image-level labels is not refined
    r = refine_targets(outputs, make_batch(batch["wsss"], [[1, 0]]), cluster=False)
    assert float(r["weight"].sum()) == 0.0 and float(r["center"].sum()) == 0.0
    # regions under min_area pixels are skipped (this one has 1400)
    r = refine_targets(outputs, batch, cluster=False, min_area=1401)
    assert float(r["weight"].sum()) == 0.0


def test_regions_with_more_than_five_instances_are_skipped():
    h, w = 30, 260
    wsss = torch.zeros(1, h, w, dtype=torch.long)
    wsss[0, 5:25, 5:255] = 1
    region = wsss[0] == 1
    xs = torch.arange(w).view(1, -1).expand(h, w)
    sem = torch.zeros(1, 2, h, w)
    sem[0, 1][region] = 2.0
    ctr = torch.zeros(1, 1, h, w)
    parts = []
    for i in range(6):
        cx = 20 + 42 * i
        ctr[0, 0, 15, cx] = 0.9
        parts.append(((cx, 15), region & (xs >= cx - 21) & (xs < cx + 21)))
    off = offsets_to(h, w, parts)[None]
    batch = make_batch(wsss, [[1]])
    out = {"semantic": sem, "center": ctr, "offset": off}
    assert float(refine_targets(out, batch, cluster=False)["weight"].sum()) == 0.0  # 6 > 5
    assert float(refine_targets(out, batch, cluster=False, max_instances=6)["weight"].sum()) > 0
    ctr[0, 0, 15, 20 + 42 * 5] = 0.0  # 5 centers: refined
    r = refine_targets(out, batch, cluster=False)
    assert float((r["weight"][0] > 0).sum()) == float(region.sum())


def test_clustering_adds_a_missed_instance_to_the_refined_labels():
    """Region of class 0, 40 rows x 160 columns; the right object (center (140, 80)) has no
    heat peak, only converging offsets (a 21-pixel low-displacement disc)."""
    h, w = 160, 160
    wsss = torch.zeros(1, h, w, dtype=torch.long)
    wsss[0, 60:100] = 1
    region = wsss[0] == 1
    xs = torch.arange(w).view(1, -1).expand(h, w)
    a, b = region & (xs < 80), region & (xs >= 80)
    sem = torch.zeros(1, 2, h, w)
    sem[0, 1][region] = math.log(3.0)  # class probability 0.75
    ctr = torch.zeros(1, 1, h, w)
    ctr[0, 0][b] = 0.1
    ctr[0, 0, 80, 20] = 0.9
    off = offsets_to(h, w, [((20, 80), a), ((140, 80), b)])[None]
    out, batch = {"semantic": sem, "center": ctr, "offset": off}, make_batch(wsss, [[1]])
    r0 = refine_targets(out, batch, cluster=False)
    assert torch.allclose(r0["weight"][0][region], torch.full((int(region.sum()),), 0.9 * 0.75))
    r1 = refine_targets(out, batch, cluster=True)
    assert torch.allclose(r1["weight"][0][a], torch.full((int(a.sum()),), 0.9 * 0.75))
    # the clustered center counts 1: weight = mean class probability
    assert torch.allclose(r1["weight"][0][b], torch.full((int(b.sum()),), 0.75))
    assert float(r1["center"][0, 0, 80, 140]) == pytest.approx(1.0)
    assert float(r1["offset"][0, 1, 80, 150]) == pytest.approx(-10.0)


def test_point_supervision_groups_to_the_points():
    outputs, batch, left, right = two_object_scene()
    outputs["center"].zero_()  # predicted centers are not used with points
    pts = [[[20.0, 20.0], [60.0, 20.0], [0.0, 0.0]]]
    pcl = [[1, 1, -1]]  # the third is padding
    batch = make_batch(batch["wsss"], [[0, 1]], pts, pcl)
    r = refine_targets(outputs, batch, sup="point")
    region = left | right
    assert torch.equal(r["weight"][0], region.float())
    inst = left.long() + 2 * right.long()
    ref = make_targets(inst, torch.tensor([[20.0, 20.0], [60.0, 20.0]]), torch.tensor([1, 1]), 2)
    assert torch.allclose(r["offset"][0], ref["offset"])
    assert torch.allclose(r["center"][0], ref["center"])
    # a point whose class is not labelled, or lies outside the crop, is not a center
    batch2 = make_batch(batch["wsss"], [[0, 1]], [[[20.0, 20.0], [500.0, 20.0]]], [[1, 1]])
    r2 = refine_targets(outputs, batch2, sup="point")
    assert float(r2["center"][0, 1].max()) == pytest.approx(1.0)
    assert torch.allclose(r2["offset"][0, 1][right], (20.0 - torch.arange(80.0)).expand(40, 80)[right])


def test_point_supervision_ignores_a_point_below_the_crop():
    outputs, batch, left, right = two_object_scene()
    # (60, 40) rounds to row 40 == h, one row below the 40-row crop. It must not be a center:
    # otherwise the right object's pixels (voting for (60, 20)) would group to it (20 px away)
    # instead of to the one real point (20, 20) (40 px away).
    b = make_batch(batch["wsss"], [[0, 1]], [[[20.0, 20.0], [60.0, 40.0]]], [[1, 1]])
    r = refine_targets(outputs, b, sup="point")
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(80.0), indexing="ij")
    assert torch.allclose(r["offset"][0, 0][right], (20.0 - ys)[right])
    assert torch.allclose(r["offset"][0, 1][right], (20.0 - xs)[right])
    # one Gaussian only, at (20, 20): nothing drawn at the bottom row
    assert float(r["center"][0, 1, 20, 20]) == pytest.approx(1.0)
    assert float(r["center"][0, 1, 39, 40:].max()) < 1e-6


def test_batch_of_images_is_independent():
    outputs, batch, left, right = two_object_scene()
    empty_wsss = torch.zeros_like(batch["wsss"])
    b2 = make_batch(torch.cat([batch["wsss"], empty_wsss]), [[0, 1], [0, 1]])
    out2 = {k: torch.cat([v, v]) for k, v in outputs.items()}
    r = refine_targets(out2, b2, cluster=False)
    single = refine_targets(outputs, batch, cluster=False)
    assert torch.allclose(r["weight"][0], single["weight"][0])
    assert float(r["weight"][1].sum()) == 0.0 and float(r["center"][1].sum()) == 0.0


def test_instance_without_a_confident_peak_falls_back_to_the_region_centroid():
    outputs, batch, left, right = two_object_scene()
    outputs["offset"][0, 1, 20, 60] = -40.0  # the right peak's own pixel votes for the left center
    r = refine_targets(outputs, batch, cluster=False)
    b_mask = right.clone()
    b_mask[20, 60] = False
    a_mask = left.clone()
    a_mask[20, 60] = True
    wgt = r["weight"][0]
    # the right instance's best heat is 0 < 0.3: weight = mean class probability alone
    assert torch.allclose(wgt[b_mask], torch.full((int(b_mask.sum()),), 0.5))
    mean_a = (700 * 0.75 + 0.5) / 701
    assert torch.allclose(wgt[a_mask], torch.full((int(a_mask.sum()),), 0.8 * mean_a))
    # centred at the region centroid (rows 10..29, cols 5..74 -> floor(19.5), floor(39.5))
    assert float(r["center"][0, 1, 19, 39]) == pytest.approx(1.0)
    assert float(r["offset"][0, 0, 25, 70]) == pytest.approx(19 - 25)
    assert float(r["offset"][0, 1, 25, 70]) == pytest.approx(39 - 70)


def test_refinement_is_detached_from_the_graph():
    outputs, batch, left, right = two_object_scene()
    live = {k: v.clone().requires_grad_(True) for k, v in outputs.items()}
    r = refine_targets(live, batch)
    assert not any(v.requires_grad for v in r.values())
    assert torch.allclose(r["weight"], refine_targets(outputs, batch)["weight"])
