import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from bestie_labels.datasets.base import Dataset, GtInstances, Record
from bestie_labels.core.errors import BestieError
from bestie_labels.evaluation import evaluate_predictions, format_metrics, voc_instance_ap
from bestie_labels.evaluation.coco_ap import encode_masks
from bestie_labels.evaluation.predictions import read_predictions
from badinput_helpers import gt_results
from bestie_labels.core.rle import decode_counts_totals

H, W = 10, 20


def box(y0, y1, x0, x1, h=H, w=W):
    """(h, w) bool with rows y0..y1-1 and columns x0..x1-1 set."""
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def rles(*masks):
    return encode_masks(np.stack(masks)) if masks else []


A = box(0, 10, 0, 10)   # 100 px
B = box(0, 10, 10, 20)  # 100 px


def ap(preds, gts, num_classes=1, thr=(0.25, 0.5, 0.7, 0.75)):
    """preds: per image [(mask, cls, score)], gts: per image [(mask, cls)]."""
    out = voc_instance_ap(
        [rles(*[m for m, _, _ in p]) for p in preds],
        [np.array([c for _, c, _ in p], np.int64) for p in preds],
        [np.array([s for _, _, s in p], float) for p in preds],
        [rles(*[m for m, _ in g]) for g in gts],
        [np.array([c for _, c in g], np.int64) for g in gts],
        num_classes, thr)
    return out


# --------------------------------------------------------------------------- VOC AP, by hand

def test_gt_matched_twice_and_image_without_predictions():
    # img0: GT A, two exact predictions -> TP then FP (A already taken); img1: GT B, no prediction.
    # Ranked: TP, FP; 2 positives -> precision [1, 1/2], recall [1/2, 1/2] -> AP = 1/2.
    out = ap([[(A, 0, 0.9), (A, 0, 0.8)], []], [[(A, 0)], [(B, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], 0.5)
    np.testing.assert_allclose(out["map"], 0.5)
    assert out["num_pos"].tolist() == [2]


def test_all_point_interpolation():
    # Ranked TP, FP, TP with 3 positives: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3; the
    # envelope is 1, 2/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9 (11-point would give 6/11 * ...).
    c = box(0, 5, 0, 5, 10, 30)
    d = box(5, 10, 10, 15, 10, 30)
    e = box(0, 5, 20, 25, 10, 30)
    f = box(5, 10, 25, 30, 10, 30)  # no GT there: a false positive
    out = ap([[(c, 0, 0.9), (f, 0, 0.8), (d, 0, 0.7)]], [[(c, 0), (d, 0), (e, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], 5 / 9)
    # FP then TP, one positive: precision 0, 1/2 -> envelope 1/2 at recall 1 -> AP 1/2.
    out = ap([[(f, 0, 0.9), (c, 0, 0.8)]], [[(c, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], 0.5)


def test_iou_thresholds():
    # Prediction = 6 of GT A's 10 columns: IoU 60/100 = 0.6 -> TP at 0.25 and 0.5, FP at 0.7, 0.75.
    out = ap([[(box(0, 10, 0, 6), 0, 1.0)]], [[(A, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], [1, 1, 0, 0])


def test_best_gt_taken_is_false_positive_without_fallback():
    # p2 = columns 1..16: IoU with A = 90/170 = 0.53 (its best), with B = 70/190 = 0.37.
    # A is taken by p1, so p2 is a FP at every threshold even though B would pass 0.25.
    p2 = box(0, 10, 1, 17)
    out = ap([[(A, 0, 0.9), (p2, 0, 0.8)]], [[(A, 0), (B, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], 0.5)  # precision 1 at recall 1/2
    # Without p1, p2 takes A where 0.53 passes: TP at 0.25 and 0.5 -> AP 1/2, FP above -> 0.
    out = ap([[(p2, 0, 0.8)]], [[(A, 0), (B, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], [0.5, 0.5, 0, 0])


def test_score_ties_keep_image_order():
    # Equal scores: a TP in img0 and a FP in img1. Ties keep image order: TP first ->
    # precision 1 at recall 1/2 -> AP 1/2; with the images swapped the FP comes first ->
    # precision 1/2 at recall 1/2 -> AP 1/4.
    out = ap([[(A, 0, 0.5)], [(B, 0, 0.5)]], [[(A, 0)], [(A, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], 0.5)
    out = ap([[(B, 0, 0.5)], [(A, 0, 0.5)]], [[(A, 0)], [(A, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], 0.25)
    # Within one image, the earlier of two tied predictions is ranked first.
    out = ap([[(B, 0, 0.5), (A, 0, 0.5)]], [[(A, 0)]])
    np.testing.assert_allclose(out["ap"][:, 0], 0.5)


def test_class_without_gt_left_out_of_mean():
    # class 0: perfect (AP 1); class 1: only a prediction, no GT -> NaN, not in the mean;
    # class 2: GT but no prediction -> AP 0, in the mean.
    out = ap([[(A, 0, 0.9), (B, 1, 0.9)]], [[(A, 0), (B, 2)]], num_classes=3)
    assert np.isnan(out["ap"][:, 1]).all()
    np.testing.assert_allclose(out["ap"][:, 0], 1.0)
    np.testing.assert_allclose(out["ap"][:, 2], 0.0)
    np.testing.assert_allclose(out["map"], 0.5)
    # No GT at all: every AP and the mean are NaN.
    out = ap([[(A, 0, 0.9)]], [[]], num_classes=2)
    assert np.isnan(out["ap"]).all() and np.isnan(out["map"]).all()


def test_other_class_gt_is_not_matched():
    # A prediction of class 1 on a class-0 GT is a FP of class 1 and the GT a miss of class 0.
    out = ap([[(A, 1, 0.9)]], [[(A, 0), (B, 1)]], num_classes=2)
    np.testing.assert_allclose(out["ap"], 0.0)


def _reference_ap(preds, gts, num_classes, thr):
    """The definition, written plainly on dense masks (one threshold at a time)."""
    res = np.full((len(thr), num_classes), np.nan)
    for ti, t in enumerate(thr):
        for c in range(num_classes):
            npos = sum(int(g[1] == c) for im in gts for g in im)
            sc, tp = [], []
            for p_im, g_im in zip(preds, gts):
                gm = [g[0] for g in g_im if g[1] == c]
                ps = [p for p in p_im if p[1] == c]
                order = sorted(range(len(ps)), key=lambda i: -ps[i][2])  # stable
                taken = set()
                for i in order:
                    m, _, s = ps[i]
                    sc.append(s)
                    if not gm:
                        tp.append(0)
                        continue
                    ious = [(m & g).sum() / max((m | g).sum(), 1) for g in gm]
                    j = int(np.argmax(ious))
                    if ious[j] >= t and j not in taken:
                        taken.add(j)
                        tp.append(1)
                    else:
                        tp.append(0)
            if npos == 0:
                continue
            order = sorted(range(len(sc)), key=lambda i: -sc[i])
            tpa = np.array([tp[i] for i in order], float)
            ctp = np.cumsum(tpa)
            prec = ctp / np.arange(1, len(tpa) + 1)
            rec = ctp / npos
            mrec = np.r_[0, rec, 1]
            mpre = np.r_[0, prec, 0]
            mpre = np.maximum.accumulate(mpre[::-1])[::-1]
            idx = np.flatnonzero(mrec[1:] != mrec[:-1])
            res[ti, c] = np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])
    return res


def test_matches_reference_on_random_cases():
    rng = np.random.default_rng(0)
    h, w, ncls = 24, 32, 4
    thr = (0.25, 0.5, 0.7, 0.75)
    for trial in range(6):
        preds, gts = [], []
        for _ in range(7):
            g_im = []
            for _ in range(rng.integers(0, 5)):
                y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
                g_im.append((box(y, y + rng.integers(3, 12), x, x + rng.integers(3, 12), h, w), int(rng.integers(ncls))))
            p_im = []
            for g, c in g_im:
                for _ in range(rng.integers(0, 3)):
                    jit = np.roll(g, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), (0, 1))
                    # coarse scores so that ties occur
                    p_im.append((jit, c if rng.random() < 0.85 else int(rng.integers(ncls)), float(rng.integers(0, 5)) / 4))
            for _ in range(rng.integers(0, 3)):
                y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
                p_im.append((box(y, y + 5, x, x + 6, h, w), int(rng.integers(ncls)), float(rng.random())))
            preds.append(p_im)
            gts.append(g_im)
        out = ap(preds, gts, ncls, thr)
        ref = _reference_ap(preds, gts, ncls, thr)
        np.testing.assert_allclose(out["ap"], ref, atol=1e-12)


# --------------------------------------------------------------------------- dataset-level

@dataclass
class TinyDataset(Dataset):
    """An in-memory dataset: GT given as {image_id: (masks (N,H,W) bool, classes, crowd)}."""

    gt: dict = field(default_factory=dict)

    def load_gt(self, rec):
        m, c, cr = self.gt[rec.image_id]
        return GtInstances(m, np.asarray(c, np.int64), np.asarray(cr, bool), np.zeros((rec.height, rec.width), bool))

    def load_image(self, rec):
        return np.zeros((rec.height, rec.width, 3), np.uint8)


def tiny_dataset():
    names = ["2007_000001", "2007_000002", "2008_000003"]
    recs = [Record(n, f"/nowhere/{n}.jpg", H, W, np.ones(3, bool)) for n in names]
    gt = {
        "2007_000001": (np.stack([A, B]), [0, 1], [False, False]),
        "2007_000002": (np.stack([box(2, 8, 2, 8), box(0, 3, 12, 20)]), [0, 0], [False, False]),
        "2008_000003": (np.zeros((0, H, W), bool), [], []),
    }
    return TinyDataset(Path("/nowhere"), "val", ["cat", "dog", "cow"], recs, gt=gt)


def results_from_gt(ds, score=0.9, list_counts=False):
    out = []
    for rec in ds.records:
        m, c, _ = ds.gt[rec.image_id]
        for mask, k in zip(m, c):
            r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            seg = {"size": r["size"], "counts": r["counts"].decode()}
            if list_counts:
                # uncompressed RLE: run lengths of the column-major pixels, starting with zeros
                flat = mask.T.ravel().astype(np.int8)
                cuts = np.flatnonzero(np.diff(flat)) + 1
                runs = np.diff(np.r_[0, cuts, flat.size]).tolist()
                seg = {"size": [rec.height, rec.width], "counts": ([0] if flat[0] else []) + runs}
            out.append({"image_id": rec.coco_id, "category_id": int(k) + 1, "segmentation": seg, "score": score})
    return out


@pytest.mark.parametrize("list_counts", [False, True])
def test_perfect_predictions_score_100(tmp_path, list_counts):
    ds = tiny_dataset()
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(results_from_gt(ds, list_counts=list_counts)))
    m = evaluate_predictions(ds, path, progress=False)
    assert m["voc"]["mAP25"] == m["voc"]["mAP50"] == m["voc"]["mAP70"] == m["voc"]["mAP75"] == 100.0
    assert m["coco"] == {"AP": 100.0, "AP50": 100.0, "AP75": 100.0}
    # class "cow" has no GT: left out of per_class
    assert set(m["voc"]["per_class"]) == {"cat", "dog"}
    assert m["voc"]["per_class"]["cat"] == {"AP25": 100.0, "AP50": 100.0, "AP70": 100.0, "AP75": 100.0}
    assert m["num_images"] == 3 and m["num_predictions"] == 4
    json.dumps(m, allow_nan=False)  # NaN-free
    assert "mean" in format_metrics(m) and "cat" in format_metrics(m)


def test_evaluate_partial_predictions_and_crowd():
    ds = tiny_dataset()
    res = results_from_gt(ds)
    # Drop the second image's predictions: cat has 3 GT, 1 found -> VOC AP 1/3 at all thresholds;
    # dog is perfect -> mAP = (1/3 + 1) / 2.
    res = [r for r in res if r["image_id"] != 2007000002]
    m = evaluate_predictions(ds, res, progress=False)
    assert m["voc"]["per_class"]["cat"]["AP50"] == pytest.approx(100 / 3, abs=1e-3)
    assert m["voc"]["mAP50"] == pytest.approx(200 / 3, abs=1e-3)
    assert m["num_predictions"] == 2
    # A crowd GT is dropped from VOC (no positive to miss) and ignored by COCO.
    ds.gt["2008_000003"] = (box(0, 10, 0, 20)[None], [2], [True])
    ds.gt["2007_000002"] = (ds.gt["2007_000002"][0], [0, 0], [False, False])
    m2 = evaluate_predictions(ds, res + [], progress=False)
    assert "cow" not in m2["voc"]["per_class"]
    assert m2["voc"]["mAP50"] == m["voc"]["mAP50"]


def test_no_predictions_at_all():
    ds = tiny_dataset()
    m = evaluate_predictions(ds, [], progress=False)
    assert m["voc"]["mAP50"] == 0.0 and m["voc"]["per_class"]["dog"]["AP75"] == 0.0
    assert m["coco"]["AP"] == 0.0
    assert m["num_predictions"] == 0


# --------------------------------------------------------------------------- malformed results

def _entry(**kw):
    r = mask_utils.encode(np.asfortranarray(A.astype(np.uint8)))
    e = {"image_id": 2007000001, "category_id": 1, "score": 0.5,
         "segmentation": {"size": [H, W], "counts": r["counts"].decode()}}
    e.update(kw)
    return e


@pytest.mark.parametrize("content, message", [
    ({"image_id": 1}, "expected a JSON list"),
    ([_entry(), 3], "entry 1: expected an object"),
    ([{"image_id": 2007000001}], "entry 0: missing 'category_id'"),
    ([_entry(), _entry(image_id=2007000009)], "entry 1: image_id 2007000009 is not in split 'val'"),
    ([_entry(image_id="2007_000001")], "entry 0: image_id '2007_000001' is not in split"),
    ([_entry(category_id=4)], "entry 0: category_id 4 is not a category of the dataset \\(1..3\\)"),
    ([_entry(category_id=0)], "entry 0: category_id 0 is not a category of the dataset \\(1..3\\)"),
    ([_entry(score=float("nan"))], "entry 0: score nan is not a finite number"),
    ([_entry(score=float("inf"))], "entry 0: score inf is not a finite number"),
    ([_entry(score="high")], "entry 0: score 'high' is not a finite number"),
    ([_entry(segmentation="1 2 3")], "entry 0: segmentation must be an RLE object with 'size' and 'counts', or polygons"),
    ([_entry(segmentation=[[1, 2, 3, 4]])], "entry 0: segmentation: no polygon of 3 points or more"),
    ([_entry(segmentation=[[1, 2, float("nan"), 4, 5, 6]])], "entry 0: segmentation: polygon has a non-finite"),
    ([_entry(segmentation={"size": [W, H], "counts": "0"})], r"entry 0: RLE size 20x10 \(h x w\) differs from image 2007_000001 \(10x20\)"),
    ([_entry(segmentation={"size": [H], "counts": "0"})], "entry 0: RLE size \\[10\\] is not"),
    ([_entry(), _entry(segmentation={"size": [H, W], "counts": "0P"})], "entry 1: malformed compressed RLE"),
    ([_entry(segmentation={"size": [H, W], "counts": "0 ~"})], "entry 0: malformed compressed RLE"),
    ([_entry(segmentation={"size": [H, W], "counts": "52"})], "entry 0: RLE counts cover 7 pixels, expected 10\\*20 = 200"),
    ([_entry(segmentation={"size": [H, W], "counts": [100, 50]})], "entry 0: RLE counts sum to 150"),
    ([_entry(segmentation={"size": [H, W], "counts": [100, -1, 101]})], "entry 0: RLE counts list must hold non-negative"),
    ([_entry(segmentation={"size": [H, W], "counts": 7})], "entry 0: RLE counts must be a string or a list"),
])
def test_malformed_results(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(BestieError, match=message) as info:
        evaluate_predictions(tiny_dataset(), path, progress=False)
    assert str(info.value).startswith(str(path) + ": ")
    assert "\n" not in str(info.value)


def test_results_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[{")
    with pytest.raises(BestieError, match="not valid JSON"):
        read_predictions(path, tiny_dataset())


def test_predictions_grouped_per_image():
    ds = tiny_dataset()
    res = [_entry(score=0.1), _entry(image_id=2008000003, category_id=3, score=0.7,
                                     segmentation={"size": [H, W], "counts": [0, 200]}), _entry(score=0.3)]
    p = read_predictions(res, ds)
    assert list(p) == ds.image_ids
    assert p["2007_000001"].scores.tolist() == [0.1, 0.3] and p["2007_000001"].entries.tolist() == [0, 2]
    assert p["2007_000002"].classes.shape == (0,)
    assert p["2008_000003"].classes.tolist() == [2]
    assert mask_utils.area(p["2008_000003"].rles[0]) == 200


def test_decode_counts_totals_matches_pycocotools():
    rng = np.random.default_rng(1)
    strings, expect = [], []
    for h, w in [(1, 1), (3, 7), (40, 31), (375, 500)]:
        for p in (0.0, 1.0, 0.05, 0.5):
            m = (rng.random((h, w, 1)) < p).astype(np.uint8)
            strings.append(mask_utils.encode(np.asfortranarray(m))[0]["counts"])
            expect.append(h * w)
    ok, total = decode_counts_totals(strings + [b"", b"0P", b"~", b"1?"])
    assert ok.tolist() == [True] * len(expect) + [True, False, False, True]
    assert total[: len(expect)].tolist() == expect
    assert total[-1] == 1 + 15 and total[-4] == 0


# --------------------------------------------------------------------------- command line

def _gt_results(ds):
    return gt_results(ds, score=1.0)


def test_evaluate_command(demo_root, tmp_path):
    from click.testing import CliRunner

    from bestie_labels.datasets import open_dataset
    from bestie_cli.labels import main

    ds = open_dataset(demo_root, split="val")
    res = _gt_results(ds)
    assert len(res) > 3
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(res))
    out = tmp_path / "metrics.json"
    r = CliRunner().invoke(main, ["evaluate", "--data", str(demo_root), "--split", "val",
                                  "--predictions", str(pred), "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert [m["voc"][k] for k in ("mAP25", "mAP50", "mAP70", "mAP75")] == [100.0] * 4
    assert m["coco"] == {"AP": 100.0, "AP50": 100.0, "AP75": 100.0}
    assert m["num_images"] == 3 and m["num_predictions"] == len(res)
    assert "mean" in r.output and "COCO mask AP 100.0" in r.output

    # Half the GT found (every other instance dropped) must score below 100 but above 0.
    pred.write_text(json.dumps(res[::2]))
    r = CliRunner().invoke(main, ["evaluate", "--data", str(demo_root), "--split", "val",
                                  "--predictions", str(pred), "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert 0 < m["voc"]["mAP50"] < 100 and 0 < m["coco"]["AP"] < 100
    assert m["num_predictions"] == len(res[::2])

    # A results file naming an image outside the split: exit 1, one line naming the file.
    pred.write_text(json.dumps(res + [dict(res[0], image_id=123)]))
    r = CliRunner().invoke(main, ["evaluate", "--data", str(demo_root), "--split", "val",
                                  "--predictions", str(pred)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"Error: {pred}: entry {len(res)}: image_id 123 is not in split 'val'"]


def test_in_memory_results_with_numpy_values():
    # The trainer passes results built in memory: numpy scalars and bytes counts are accepted.
    ds = tiny_dataset()
    r = mask_utils.encode(np.asfortranarray(A.astype(np.uint8)))
    res = [{"image_id": np.int64(2007000001), "category_id": np.int32(1), "score": np.float32(0.5),
            "segmentation": r}]
    m = evaluate_predictions(ds, res, progress=False)
    assert m["voc"]["per_class"]["cat"]["AP50"] == pytest.approx(100 / 3, abs=1e-3)
    assert m["num_predictions"] == 1
