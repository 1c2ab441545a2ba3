"""The quality suite's dataset families (smoke test: the benchmark itself is not part of the suite)."""

import cv2
import numpy as np
import pytest

from bestie_labels.core.constants import VOID
from bestie_labels.core.errors import BestieError
from bestie_labels.datasets import open_dataset
from bestie_labels.pipeline.quality_data import FAMILIES, draw_family_image, make_family_dataset


def _images(name, n=8):
    fam = FAMILIES[name]
    return [draw_family_image(np.random.default_rng(i), fam) for i in range(n)]


def _mean_hue(image, inst, k):
    # Hue of the mean colour of instance k (texture modulates brightness, not hue).
    px = image[inst == k].astype(np.float32).mean(0)
    return int(cv2.cvtColor(np.uint8(px.round())[None, None], cv2.COLOR_RGB2HSV)[0, 0, 0])


def test_every_family_draws_consistent_labels():
    assert list(FAMILIES) == ["colour", "shape", "texture", "touching", "small", "clutter", "voclike"]
    for name, fam in FAMILIES.items():
        for image, inst, classes in _images(name, 3):
            assert image.shape == (fam.height, fam.width, 3) and inst.shape == (fam.height, fam.width)
            ids = set(np.unique(inst).tolist()) - {0, VOID}
            assert ids == set(range(1, len(classes) + 1)), name  # every instance visible
            assert len(classes) <= fam.max_objects and (classes < len(fam.class_names)).all()
    assert (FAMILIES["voclike"].width, FAMILIES["voclike"].height, len(FAMILIES["voclike"].class_names)) == (500, 375, 20)


def test_colour_family_separates_classes_by_hue_only():
    hues = {}
    for image, inst, classes in _images("colour", 12):
        for k, c in enumerate(classes, 1):
            hues.setdefault(int(c), []).append(_mean_hue(image, inst, k))
    ranges = FAMILIES["colour"].hues
    for c, hs in hues.items():
        lo, hi = ranges[c]
        inside = [(lo - 6 <= h <= hi + 6) or (c == 0 and h >= 174) for h in hs]  # red wraps at 180
        assert np.mean(inside) > 0.9, (c, hs)
    # The shape family's classes take any hue: class 0 objects are not confined to one family.
    spread = [_mean_hue(im, inst, k) for im, inst, cl in _images("shape", 12) for k, c in enumerate(cl, 1) if c == 0]
    assert np.ptp(spread) > 60


def test_small_and_touching_families_by_their_counts():
    small = [len(cl) for _, _, cl in _images("small", 10)]
    demo_like = [len(cl) for _, _, cl in _images("clutter", 10)]
    assert np.mean(small) > np.mean(demo_like) + 2
    # touching: nearly every instance shares a void band with another of its class.
    shared = total = 0
    k3 = np.ones((3, 3), np.uint8)
    for _, inst, cl in _images("touching", 6):
        for k, c in enumerate(cl, 1):
            near = cv2.dilate((inst == k).astype(np.uint8), k3, iterations=3).astype(bool)
            others = [j for j, cj in enumerate(cl, 1) if cj == c and j != k]
            shared += bool(np.isin(inst[near], others).any())
            total += 1
    assert shared / total > 0.7


def test_family_tree_reads_as_voc(tmp_path):
    root = make_family_dataset(tmp_path / "voc", "voclike", n_images=4, scale=0.25)
    ds = open_dataset(root, "train")
    assert len(ds.records) == 3 and ds.num_classes == 20
    rec = ds.records[0]
    gt = ds.load_gt(rec)
    assert (rec.width, rec.height) == (125, 94) and gt.masks.shape[1:] == (94, 125)
    assert set(np.flatnonzero(rec.labels)) == set(gt.classes.tolist())
    assert (tmp_path / "voc" / "points" / f"{rec.image_id}.txt").read_text().count("\n") == len(gt.classes)
    with pytest.raises(BestieError, match="exists"):
        make_family_dataset(root, "voclike", n_images=4)
    with pytest.raises(BestieError, match="unknown family"):
        make_family_dataset(tmp_path / "x", "nope")
