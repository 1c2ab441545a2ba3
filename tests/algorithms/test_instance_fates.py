"""The fate of every GT instance (report's ``lost``), on a scene built by hand."""

import numpy as np
from bestie_labels.algorithms.instance_fates import FATES, count_fates, cue_hits, format_lost, instance_fates
from bestie_labels.algorithms.knowledge_transfer import gt_to_pseudo
from bestie_labels.algorithms.matching import NUM_GT, TP, match_pseudo_to_gt
from bestie_labels.datasets.base import GtInstances

H, W = 14, 24
# name: (rows, cols, class, crowd)
BOXES = {"A": (slice(1, 5), slice(1, 5), 0, False),     # cue, own component, pseudo = A: kept
         "B": (slice(1, 5), slice(7, 11), 0, False),    # covered by the class mask, no cue: no_cue
         "F": (slice(1, 4), slice(14, 17), 0, False),   # one cue, but its component floods: poor_mask
         "C": (slice(6, 9), slice(1, 4), 1, False),     # C and D touch: one component, two cues: merged
         "D": (slice(6, 9), slice(4, 7), 1, False),
         "E": (slice(6, 9), slice(8, 11), 1, False),    # class mask covers 3 of 9 px: wsss_missed
         "G": (slice(11, 14), slice(1, 4), 1, False),   # covered 8 of 9, but not at its cue: wsss_missed
         "X": (slice(11, 14), slice(8, 11), 0, True)}   # crowd: no fate
EXPECTED = {"A": "kept", "B": "no_cue", "F": "poor_mask", "C": "merged", "D": "merged", "E": "wsss_missed",
            "G": "wsss_missed"}


def _scene():
    masks = np.zeros((len(BOXES), H, W), bool)
    for i, (r, c, _, _) in enumerate(BOXES.values()):
        masks[i, r, c] = True
    gt = GtInstances(masks=masks, classes=np.array([b[2] for b in BOXES.values()], np.int64),
                     crowd=np.array([b[3] for b in BOXES.values()]), void=np.zeros((H, W), bool))
    wsss = np.zeros((H, W), np.uint8)
    wsss[1:5, 1:5] = 1       # A
    wsss[1:5, 7:11] = 1      # B
    wsss[0:12, 13:24] = 1    # F's component: 132 px
    wsss[6:9, 1:7] = 2       # C + D
    wsss[6:9, 8] = 2         # E's first column
    wsss[11:14, 1:4] = 2     # G ...
    wsss[12, 2] = 0          # ... but not its cue pixel
    cues = np.array([[2.7, 2.2, 0, 0.9],   # in A (pixel row 2, col 2)
                     [15, 2, 0, 0.8],      # in F
                     [16, 3, 1, 0.8],      # in F, other class: not F's cue
                     [2, 7, 1, 0.9], [5, 7, 1, 0.7],  # in C, in D
                     [8, 7, 1, 0.6],       # in E, on its covered column
                     [2, 12, 1, 0.6],      # in G, on the hole
                     [9, 12, 0, 0.9]], np.float32)  # in the crowd region
    inst = np.zeros((H, W), np.uint16)
    inst[1:5, 1:5] = 1
    inst[0:12, 13:24] = 2
    pseudo = dict(instances=inst, classes=np.array([0, 0], np.int32), scores=np.array([0.9, 0.8], np.float32))
    return gt, cues, wsss, pseudo


def test_every_fate_by_hand():
    gt, cues, wsss, pseudo = _scene()
    fates = instance_fates(gt, cues, wsss, pseudo)
    names = [FATES[f] if f >= 0 else None for f in fates]
    assert names == [EXPECTED.get(k) for k in BOXES]


def test_coverage_threshold_and_connectivity():
    gt, cues, wsss, pseudo = _scene()
    # E covered 3/9, exactly at min_cover 1/3 (not below): it reaches the transfer alone in its
    # component, which matches nothing.
    f = instance_fates(gt, cues, wsss, pseudo, min_cover=1 / 3)
    assert FATES[f[list(BOXES).index("E")]] == "poor_mask"
    # C and D joined only diagonally: 8-connected one component (merged), 4-connected two (poor_mask).
    wsss2 = wsss.copy()
    wsss2[6:9, 4:7] = 0
    wsss2[9, 4:7] = 2   # D's mask moved down one row, touching C's corner only
    gt.masks[list(BOXES).index("D")] = False
    gt.masks[list(BOXES).index("D"), 9, 4:7] = True
    cues[4] = [5, 9, 1, 0.7]
    d = list(BOXES).index("D")
    assert FATES[instance_fates(gt, cues, wsss2, pseudo, connectivity=8)[d]] == "merged"
    assert FATES[instance_fates(gt, cues, wsss2, pseudo, connectivity=4)[d]] == "poor_mask"


def test_a_match_overrides_every_loss_and_counts_agree_with_report():
    gt, cues, wsss, _ = _scene()
    perfect = gt_to_pseudo(gt)
    fates = instance_fates(gt, cues, wsss, perfect)
    assert [FATES[f] if f >= 0 else None for f in fates] == ["kept"] * 7 + [None]
    # kept == the report's TP, the fates' total == its GT count, per class.
    _, _, _, pseudo = _scene()
    fates = instance_fates(gt, cues, wsss, pseudo)
    counts = match_pseudo_to_gt(pseudo, gt, 2)
    lost = count_fates([fates], [gt.classes], ["a", "b"])
    for k, name in enumerate(["a", "b"]):
        assert lost["per_class"][name]["kept"] == counts[k, TP]
        assert sum(lost["per_class"][name].values()) == counts[k, NUM_GT]
    assert lost["total"] == {"kept": 1, "no_cue": 1, "wsss_missed": 2, "merged": 2, "poor_mask": 1}
    assert lost["per_class"]["b"] == {"kept": 0, "no_cue": 0, "wsss_missed": 2, "merged": 2, "poor_mask": 0}
    assert format_lost(lost) == "lost: no_cue 1, wsss_missed 2, merged 2, poor_mask 1; kept 1 of 7 GT"


def test_empty_image_and_no_cues():
    gt = GtInstances(masks=np.zeros((0, 4, 4), bool), classes=np.zeros(0, np.int64), crowd=np.zeros(0, bool),
                     void=np.zeros((4, 4), bool))
    empty = dict(instances=np.zeros((4, 4), np.uint16), classes=np.zeros(0, np.int32), scores=np.zeros(0))
    assert instance_fates(gt, np.zeros((0, 4)), np.zeros((4, 4), np.uint8), empty).shape == (0,)
    g, _, wsss, _ = _scene()
    f = instance_fates(g, np.zeros((0, 4), np.float32), wsss, dict(empty, instances=np.zeros((H, W), np.uint16)))
    assert [FATES[x] for x in f[:-1]] == ["no_cue"] * 7


def test_void_is_not_part_of_a_match():
    # The pseudo mask spills over 20 void pixels (16 px instance): IoU 1 without them, 16/36 with.
    gt, cues, wsss, pseudo = _scene()
    gt.void[0, 0:13] = True
    gt.void[5, 0:7] = True
    pseudo["instances"][gt.void & (pseudo["instances"] == 0)] = 1
    assert FATES[instance_fates(gt, cues, wsss, pseudo)[0]] == "kept"


def test_cue_hits_count_instances_with_their_own_cue_not_the_kept_ones():
    """The cue quality's TP: B (no cue) is not a hit even when a perfect pseudo label keeps it;
    the crowd region's cue hits nothing; every other instance holds a cue of its class."""
    gt, cues, wsss, _ = _scene()
    hits = cue_hits(gt, cues)
    assert hits.tolist() == [True, False, True, True, True, True, True, False]
    kept = instance_fates(gt, cues, wsss, gt_to_pseudo(gt))
    assert (kept[:7] == FATES.index("kept")).all() and hits.sum() == 6  # 7 kept, 6 with a cue
    assert cue_hits(gt, np.zeros((0, 4), np.float32)).tolist() == [False] * 8
