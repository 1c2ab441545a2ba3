import json

import numpy as np
import pytest

from bestie_labels.datasets.base import GtInstances
from bestie_labels.algorithms.matching import format_table, mask_iou, match_pseudo_to_gt, summarise


def _gt(masks, classes, crowd=None, void=None):
    masks = np.asarray(masks, bool)
    n, h, w = masks.shape
    return GtInstances(masks=masks, classes=np.asarray(classes, np.int64),
                       crowd=np.zeros(n, bool) if crowd is None else np.asarray(crowd, bool),
                       void=np.zeros((h, w), bool) if void is None else void)


def _pseudo(inst, classes, scores):
    return dict(instances=np.asarray(inst, np.uint16), classes=np.asarray(classes, np.int32),
                scores=np.asarray(scores, np.float32))


def test_mask_iou_by_hand():
    a = np.zeros((2, 2, 4), bool)
    a[0, :, :2] = True          # 4 px
    b = np.zeros((2, 2, 4), bool)
    b[0, :, 1:4] = True         # 6 px, 2 shared with a[0]
    iou = mask_iou(a, b)
    assert iou[0, 0] == pytest.approx(2 / 8)
    assert iou[0, 1] == 0 and iou[1, 0] == 0 and iou[1, 1] == 0  # empty masks: 0, not NaN


def test_match_counts_tp_threshold_class_and_crowd():
    h, w = 10, 10
    g = np.zeros((4, h, w), bool)
    g[0, 0:5, 0:5] = True    # class 0
    g[1, 0:5, 5:10] = True   # class 0
    g[2, 6:10, 0:10] = True  # class 1
    g[3, 5, 0:4] = True      # class 1, crowd: not counted, not matched
    gt = _gt(g, [0, 0, 1, 1], crowd=[False, False, False, True])
    inst = np.zeros((h, w), np.uint16)
    inst[0:5, 0:5] = 1    # class 0 = g0 exactly: TP
    inst[0:5, 5:7] = 2    # class 0, 10 px inside g1: IoU 0.4: not a TP
    inst[6:10, 0:5] = 3   # class 1, left half of g2: IoU 0.5 exactly: TP (>= 0.5)
    inst[6:10, 5:10] = 4  # class 1, right half of g2: IoU 0.5 but g2 is taken: not a TP
    inst[5, 0:4] = 5      # class 2 on the crowd region: no GT of class 2
    p = _pseudo(inst, [0, 0, 1, 1, 2], [0.3, 0.9, 0.8, 0.7, 0.5])
    counts = match_pseudo_to_gt(p, gt, num_classes=3)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, [[2, 1, 2], [2, 1, 1], [1, 0, 0]])
    # A stricter threshold drops the IoU-0.5 match.
    np.testing.assert_array_equal(match_pseudo_to_gt(p, gt, 3, iou_thr=0.6)[:, 1], [1, 0, 0])


def test_match_class_must_agree():
    g = np.zeros((1, 4, 4), bool)
    g[0, :2] = True
    inst = np.zeros((4, 4), np.uint16)
    inst[:2] = 1
    counts = match_pseudo_to_gt(_pseudo(inst, [1], [1.0]), _gt(g, [0]), 2)
    np.testing.assert_array_equal(counts, [[0, 0, 1], [1, 0, 0]])


def test_match_greedy_takes_best_iou_in_score_order():
    # 1x20 image; GT masks may overlap (COCO). With IoU >= 0.5 and disjoint pseudo masks the
    # order cannot change the counts, so this uses a threshold of 0.29.
    g = np.zeros((2, 1, 20), bool)
    g[0, 0, 2:12] = True                     # X, 10 px
    g[1, 0, 0:3] = g[1, 0, 12:16] = True     # Y, 7 px
    inst = np.zeros((1, 20), np.uint16)
    inst[0, 0:6] = 1   # IoU with X 4/12 = 0.333 (its best), with Y 3/10 = 0.3
    inst[0, 6:12] = 2  # IoU with X 6/10 = 0.6, with Y 0
    gt = _gt(g, [0, 0])
    # Pseudo 1 first (higher score): it takes X, its best; pseudo 2 is left with nothing.
    first = match_pseudo_to_gt(_pseudo(inst, [0, 0], [0.9, 0.8]), gt, 1, iou_thr=0.29)
    np.testing.assert_array_equal(first, [[2, 1, 2]])
    # Pseudo 2 first: it takes X; pseudo 1 then takes Y.
    second = match_pseudo_to_gt(_pseudo(inst, [0, 0], [0.1, 0.8]), gt, 1, iou_thr=0.29)
    np.testing.assert_array_equal(second, [[2, 2, 2]])


def test_match_leaves_void_out_of_pseudo_masks():
    void = np.zeros((6, 6), bool)
    void[:, 3:6] = True
    g = np.zeros((1, 6, 6), bool)
    g[0, :, 0:2] = True                       # 12 px
    inst = np.ones((6, 6), np.uint16)         # 36 px, 18 of them void
    gt = _gt(g, [0], void=void)
    # Without the void: 12 / 18 = 0.67 -> TP; with it, 12 / 36 would be 0.33.
    np.testing.assert_array_equal(match_pseudo_to_gt(_pseudo(inst, [0], [1.0]), gt, 1), [[1, 1, 1]])


def test_match_empty_sides():
    g = np.zeros((1, 3, 3), bool)
    g[0, 1, 1] = True
    empty = _pseudo(np.zeros((3, 3)), np.zeros(0), np.zeros(0))
    np.testing.assert_array_equal(match_pseudo_to_gt(empty, _gt(g, [1]), 2), [[0, 0, 0], [0, 0, 1]])
    p = _pseudo(np.ones((3, 3)), [0], [1.0])
    no_gt = _gt(np.zeros((0, 3, 3), bool), [])
    np.testing.assert_array_equal(match_pseudo_to_gt(p, no_gt, 2), [[1, 0, 0], [0, 0, 0]])


def test_summarise_and_table():
    per_image = [np.array([[2, 1, 2], [0, 0, 0]]), np.array([[1, 1, 2], [3, 0, 0]])]
    s = summarise(per_image, ["cow", "dog"])
    assert s["num_images"] == 2
    assert s["classes"]["cow"] == {"num_pseudo": 3, "tp": 2, "num_gt": 4,
                                   "precision": pytest.approx(200 / 3), "recall": 50.0}
    assert s["classes"]["dog"] == {"num_pseudo": 3, "tp": 0, "num_gt": 0, "precision": 0.0,
                                   "recall": None}
    assert s["total"] == {"num_pseudo": 6, "tp": 2, "num_gt": 4, "precision": pytest.approx(100 / 3),
                          "recall": 50.0}
    json.dumps(s)  # JSON-ready
    table = format_table(s)
    lines = table.splitlines()
    assert lines[0].split() == ["class", "pseudo", "TP", "GT", "prec%", "recall%"]
    cow = next(line for line in lines if line.startswith("cow"))
    assert cow.split() == ["cow", "3", "2", "4", "66.7", "50.0"]
    dog = next(line for line in lines if line.startswith("dog"))
    assert dog.split() == ["dog", "3", "0", "0", "0.0", "-"]
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "6", "2", "4", "33.3", "50.0"]
    assert summarise(np.stack(per_image), ["cow", "dog"]) == s


def test_summarise_without_gt_counts_pseudo_instances_only():
    """A split without GT: pseudo counts per class and in total; TP, GT, precision and recall
    None (printed as '-'), and a note saying why."""
    from bestie_labels.algorithms.matching import summarise_without_gt

    counts = [np.array([[2, 0, 0], [1, 0, 0]]), np.array([[0, 0, 0], [3, 0, 0]])]
    s = summarise_without_gt(counts, ["cat", "dog"])
    assert s["num_images"] == 2
    assert s["classes"]["cat"] == {"num_pseudo": 2, "tp": None, "num_gt": None, "precision": None, "recall": None}
    assert s["classes"]["dog"]["num_pseudo"] == 4
    assert s["total"] == {"num_pseudo": 6, "tp": None, "num_gt": None, "precision": None, "recall": None}
    assert s["note"].startswith("precision and recall need GT instances")
    table = format_table(s)
    # columns: class (5 wide), pseudo TP GT prec% (7 wide each), recall% (8 wide), one space apart
    assert "total" + " " * 7 + "6" + (" " * 7 + "-") * 3 + " " * 8 + "-" in table.splitlines()
    assert "(2 images)" in table
