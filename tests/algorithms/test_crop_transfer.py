"""The per-crop semantic knowledge transfer against an independent, loop-by-loop implementation
of the official loader's (``pseudo_label_generation`` after scale, crop and flip)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bestie_labels.datasets import open_dataset
from bestie_labels.core.errors import BestieError
from bestie_labels.stages import TransferOptions, run_cues, run_transfer, run_wsss
from bestie_train.targets import make_targets
from bestie_train.augment import draw_geometry
from bestie_train.data import TrainData, sample_rng

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def stores(demo_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("crop_transfer")
    ds = open_dataset(demo_root, split="train")
    run_wsss(ds, d / "wsss.h5", from_gt=True)
    run_cues(ds, d / "cues.h5", method="points")
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", d / "point.h5")  # center: the point
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", d / "centroid.h5", TransferOptions(center="centroid", min_area=20))
    return ds, d


def _official_crop(wsss, cues, g, h, w):
    """Scale, crop/pad and flip a WSSS mask and its cues as the official transforms do."""
    m = cv2.resize(wsss, (g.width, g.height), interpolation=cv2.INTER_NEAREST)
    canvas = np.full((g.crop, g.crop), 255, np.uint8)
    canvas[g.yd:g.yd + g.hl, g.xd:g.xd + g.wl] = m[g.ys:g.ys + g.hl, g.xs:g.xs + g.wl]
    out = []
    for x, y, c, conf in cues:
        x = (x + 0.5) * g.width / w - 0.5 + g.xd - g.xs
        y = (y + 0.5) * g.height / h - 0.5 + g.yd - g.ys
        if g.flip:
            x = g.crop - 1 - x
        if -0.5 < x < g.crop - 0.5 and -0.5 < y < g.crop - 0.5:  # cues outside the crop are dropped
            out.append((x, y, int(c), conf))
    return (canvas[:, ::-1].copy() if g.flip else canvas), out


def _official_transfer(seg, cues, labels, min_area, center):
    """One component at a time: kept when it holds exactly one cue of its class. Returns the
    instances, the heatmap centers (the cue for point labels), the classes and the offset
    centers (always the component's centroid: the official point-supervised target)."""
    inst = np.zeros(seg.shape, np.int64)
    centers, classes, centroids = [], [], []
    for c in np.flatnonzero(labels):
        n, lab, stats, cents = cv2.connectedComponentsWithStats((seg == c + 1).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] < min_area:
                continue
            hits = [(x, y) for x, y, cc, _ in cues if cc == c and lab[min(max(int(y), 0), seg.shape[0] - 1),
                                                                       min(max(int(x), 0), seg.shape[1] - 1)] == k]
            if len(hits) != 1:
                continue
            inst[lab == k] = len(classes) + 1
            classes.append(c)
            centers.append(hits[0] if center == "point" else tuple(cents[k]))
            centroids.append(tuple(cents[k]))
    return (inst, np.array(centers, np.float32).reshape(-1, 2), np.array(classes, np.int64),
            np.array(centroids, np.float32).reshape(-1, 2))


@pytest.mark.parametrize("pseudo,center,min_area,recipe", [("point.h5", "point", 50, "cpu"),
                                                          ("centroid.h5", "centroid", 20, "cpu"),
                                                          ("centroid.h5", "centroid", 20, "paper")])
def test_per_crop_transfer_matches_the_official_rule(stores, pseudo, center, min_area, recipe):
    ds, d = stores
    data = TrainData(ds, d / pseudo, d / "wsss.h5", crop=40, scale=(0.8, 1.3), seed=3, cues=d / "cues.h5",
                     recipe=recipe)
    paper = dict(resize_to=40 + 64, scale_step=0.1) if recipe == "paper" else {}
    # cues from points files: auto is the paper's rule (drop / drop)
    assert data.transfer == TransferOptions(min_area=min_area, connectivity=8, center=center, cueless="drop",
                                            multi_cue="drop")
    dropped = cut = 0
    for epoch in range(3):
        for index in range(len(ds)):
            a = data.load(index)
            h, w = a["wsss"].shape
            g = draw_geometry(sample_rng(3, epoch, index), h, w, 40, (0.8, 1.3), **paper)
            seg, cues = _official_crop(a["wsss"], a["cues"], g, h, w)
            inst, centers, classes, centroids = _official_transfer(seg, cues, a["labels"], min_area, center)
            want = make_targets(torch.from_numpy(inst), torch.from_numpy(centers), torch.from_numpy(classes),
                                ds.num_classes, sigma=data.sigma, offset_centers=torch.from_numpy(centroids))
            got = data[(epoch, index)]
            np.testing.assert_array_equal(got["weight"].numpy(), want["weight"].numpy())
            np.testing.assert_allclose(got["offset"].numpy(), want["offset"].numpy(), atol=1e-4)
            np.testing.assert_allclose(got["center"].numpy(), want["center"].numpy(), atol=1e-6)
            np.testing.assert_array_equal(got["wsss"].numpy(), seg)
            dropped += len(a["cues"]) - len(cues)
            border = np.concatenate([inst[0], inst[-1], inst[:, 0], inst[:, -1]])
            cut += int((border > 0).any())
    # the crops did cut instances and drop cues: the cases the per-crop transfer exists for
    assert dropped > 10 and cut > 5


def test_carried_centers_can_leave_the_crop_but_per_crop_ones_cannot(stores):
    """What the per-crop transfer fixes: a full-image centroid carried into a crop that cuts its
    instance may lie outside the crop; a per-crop centroid lies on the visible part."""
    ds, d = stores
    carried = TrainData(ds, d / "centroid.h5", d / "wsss.h5", crop=32, seed=0)
    per_crop = TrainData(ds, d / "centroid.h5", d / "wsss.h5", crop=32, seed=0, cues=d / "cues.h5")
    outside = 0
    for index in range(len(ds)):
        for data, is_carried in ((carried, True), (per_crop, False)):
            s = data[(0, index)]
            has_weight = s["weight"].sum(dim=(0, 1)) > 0
            peaks = s["center"].amax(dim=(1, 2))
            # a class with trained pixels but no peak of 1: its center fell outside the crop
            miss = int(((s["weight"][None] * (s["semantic"][None] == torch.arange(1, ds.num_classes + 1)[:, None, None]))
                        .sum(dim=(1, 2)) > 0).logical_and(peaks < 0.999).sum())
            if is_carried:
                outside += miss
            else:
                assert miss == 0 or not has_weight
    assert outside > 0


def test_cues_must_be_the_ones_the_pseudo_labels_came_from(stores, tmp_path):
    ds, d = stores
    other = tmp_path / "cues.h5"
    run_cues(ds, other, method="points", min_conf=0.5)  # other options: other bytes
    with pytest.raises(BestieError, match="not the cues store the pseudo labels were made from"):
        TrainData(ds, d / "point.h5", d / "wsss.h5", crop=32, cues=other)
    run_transfer(ds, None, None, tmp_path / "gt.h5", TransferOptions(from_gt=True))
    with pytest.raises(BestieError, match="holds GT instances"):
        TrainData(ds, tmp_path / "gt.h5", d / "wsss.h5", crop=32, cues=d / "cues.h5")


def test_per_crop_transfer_runs_with_the_store_s_cueless_and_multi_cue(stores, tmp_path):
    """A pseudo store made with --cueless keep --multi-cue split: every training crop is
    transferred with the same modes (the targets equal those of transfer_instances on the crop)."""
    from bestie_labels.algorithms.knowledge_transfer import transfer_instances

    ds, d = stores
    opts = TransferOptions(center="centroid", min_area=20, cueless="keep", multi_cue="split")
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", tmp_path / "p.h5", opts)
    data = TrainData(ds, tmp_path / "p.h5", d / "wsss.h5", crop=40, scale=(0.8, 1.3), seed=3, cues=d / "cues.h5")
    assert data.transfer == opts
    for index in range(len(ds)):
        a = data.load(index)
        h, w = a["wsss"].shape
        g = draw_geometry(sample_rng(3, 0, index), h, w, 40, (0.8, 1.3))
        seg, cues = _official_crop(a["wsss"], a["cues"], g, h, w)
        r = transfer_instances(seg, np.asarray(cues, np.float32).reshape(-1, 4), a["labels"], **opts.keywords())
        want = make_targets(torch.from_numpy(r["instances"].astype(np.int64)), torch.from_numpy(r["centers"]),
                            torch.from_numpy(r["classes"].astype(np.int64)), ds.num_classes, sigma=data.sigma)
        got = data[(0, index)]
        np.testing.assert_array_equal(got["weight"].numpy(), want["weight"].numpy())
        np.testing.assert_allclose(got["center"].numpy(), want["center"].numpy(), atol=1e-6)


def test_point_offsets_point_regresses_offsets_to_the_point(stores):
    """--point-offsets point: the offsets of a point-centered instance go to the point itself."""
    ds, d = stores
    data = TrainData(ds, d / "point.h5", d / "wsss.h5", crop=40, scale=(0.8, 1.3), seed=3, cues=d / "cues.h5",
                     point_offsets="point")
    official = TrainData(ds, d / "point.h5", d / "wsss.h5", crop=40, scale=(0.8, 1.3), seed=3, cues=d / "cues.h5")
    differ = 0
    for index in range(len(ds)):
        a = data.load(index)
        h, w = a["wsss"].shape
        g = draw_geometry(sample_rng(3, 0, index), h, w, 40, (0.8, 1.3))
        seg, cues = _official_crop(a["wsss"], a["cues"], g, h, w)
        inst, centers, classes, _ = _official_transfer(seg, cues, a["labels"], 50, "point")
        want = make_targets(torch.from_numpy(inst), torch.from_numpy(centers), torch.from_numpy(classes),
                            ds.num_classes, sigma=data.sigma)
        got = data[(0, index)]
        np.testing.assert_allclose(got["offset"].numpy(), want["offset"].numpy(), atol=1e-4)
        np.testing.assert_array_equal(got["center"].numpy(), official[(0, index)]["center"].numpy())
        differ += int(not np.allclose(got["offset"].numpy(), official[(0, index)]["offset"].numpy()))
    assert differ > 0
    with pytest.raises(ValueError, match="point_offsets"):
        TrainData(ds, d / "point.h5", d / "wsss.h5", crop=40, point_offsets="middle")
