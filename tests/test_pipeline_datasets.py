"""The pipeline on every dataset kind (issue 19, item 6): a COCO-2017-style JSON pair and a
folder dataset, not only a VOC root; the preflight check refuses before anything long runs.

The COCO files are the demo tree's train and val splits written as COCO instances JSONs with
category ids {3, 17, 44, 90} and image ids like 397133, the images under ``images/train2017``
(``file_name`` keeps the subfolder); the train JSON also holds one detection-only image (a box,
no mask), which every stage skips with a warning naming it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from badinput_helpers import assert_one_line_error, invoke
from bestie_labels.core.errors import BestieError
from bestie_labels.datasets import open_dataset
from bestie_labels.evaluation.coco_ap import encode_masks
from bestie_labels.pipeline.data_args import data_args
from bestie_labels.pipeline.plan import PipelineConfig, build_stages, run_pipeline
from bestie_labels.pipeline.preflight import check_pipeline_data

CAT_IDS = [3, 17, 44, 90]


def _coco_split(voc: Path, split: str, root: Path, first_id: int, detection_only: bool = False) -> Path:
    """Split ``split`` of the VOC tree ``voc`` as ``root/annotations/instances_<split>2017.json``,
    its images copied to ``root/images/<split>2017/``; returns the JSON's path."""
    ds = open_dataset(voc, split)
    folder = root / "images" / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, anns = [], []
    for n, rec in enumerate(ds.records):
        shutil.copy(rec.file_name, folder / Path(rec.file_name).name)
        iid = first_id + 7919 * n
        images.append({"id": iid, "file_name": f"{split}2017/{Path(rec.file_name).name}", "height": rec.height,
                       "width": rec.width})
        gt = ds.load_gt(rec)
        for r, c in zip(encode_masks(gt.masks), gt.classes):
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": CAT_IDS[int(c)], "iscrowd": 0,
                         "area": 1.0, "bbox": [0, 0, 1, 1], "segmentation": {"size": r["size"],
                                                                             "counts": r["counts"].decode()}})
    if detection_only:  # a box without a mask: the image has no complete instance masks
        shutil.copy(ds.records[0].file_name, folder / "box_only.jpg")
        images.append({"id": 1, "file_name": f"{split}2017/box_only.jpg", "height": 64, "width": 64})
        anns.append({"id": len(anns) + 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 9.0,
                     "bbox": [1, 1, 3, 3]})
    cats = [{"id": i, "name": n, "supercategory": "shape"} for i, n in zip(CAT_IDS, ds.class_names)]
    path = root / "annotations" / f"instances_{split}2017.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


@pytest.fixture(scope="module")
def coco_pair(demo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    train = _coco_split(demo_root, "train", root, 397133, detection_only=True)
    val = _coco_split(demo_root, "val", root, 500001)
    return train, val, root / "images"


def _coco_cfg(coco_pair, demo_root, work: Path, **kw) -> PipelineConfig:
    train, val, images = coco_pair
    return PipelineConfig(work=str(work), data=str(train), images=str(images), val_data=str(val),
                          val_images=str(images), sup="point", points_dir=str(demo_root / "points"),
                          wsss_dir=str(demo_root / "SegmentationClass"), fit_iters="3", workers=1, **kw)


def test_stages_of_a_coco_pair_read_the_train_json_and_evaluate_on_the_val_json(coco_pair, demo_root, tmp_path):
    train, val, images = coco_pair
    stages = {s.name: s for s in build_stages(_coco_cfg(coco_pair, demo_root, tmp_path))}
    assert stages["transfer"].argv[2:10] == ["--data", str(train), "--images", str(images), "--split", "train",
                                             "--cues", str(tmp_path / "cues.h5")]
    ev = stages["evaluate"].argv
    assert ev[ev.index("--data") + 1] == str(val) and ev[ev.index("--images") + 1] == str(images)
    assert str(train) in stages["cues"].inputs  # the JSON is a Make dependency


def test_a_folder_dataset_has_no_evaluate_stage_and_says_so(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "labels.csv").write_text("image,classes\n")
    cfg = PipelineConfig(work=str(tmp_path / "w"), data=str(tmp_path / "f"), sup="cls")
    names = [s.name for s in build_stages(cfg)]
    assert "evaluate" not in names and "evaluate-last" not in names and names[-1] == "summary"
    d = data_args(str(tmp_path / "f"))
    assert d.kind == "folder" and d.val is None and d.inputs == [str(tmp_path / "f" / "labels.csv")]


def test_a_coco_json_without_val_data_is_refused_at_once(coco_pair, tmp_path):
    train, _, images = coco_pair
    with pytest.raises(BestieError, match=r"instances_train2017\.json: a COCO JSON is one split: the pipeline "
                                          r"evaluates on --val-data"):
        build_stages(PipelineConfig(work=str(tmp_path), data=str(train), images=str(images)))


def test_preflight_refuses_too_few_images_and_a_missing_split(coco_pair, demo_root, tmp_path):
    cfg = _coco_cfg(coco_pair, demo_root, tmp_path / "w")
    with pytest.warns(UserWarning, match=r"skipped 1 detection-only image\(s\).*image 1 \(train2017/box_only\.jpg\)"):
        assert check_pipeline_data(cfg, min_images=9) == []  # the demo's 9 train images, box-only one skipped
    with pytest.raises(BestieError, match=r"the training split 'instances_train2017' has 9 image\(s\), fewer than "
                                          r"fit's batch size 10"), pytest.warns(UserWarning, match="box_only"):
        check_pipeline_data(cfg, min_images=10)
    voc = PipelineConfig(work=str(tmp_path / "w"), voc_root=str(demo_root), sup="point")
    (tmp_path / "voc").mkdir()
    shutil.copytree(demo_root, tmp_path / "voc" / "v")
    (tmp_path / "voc" / "v" / "ImageSets" / "Segmentation" / "val.txt").unlink()
    voc.voc_root = str(tmp_path / "voc" / "v")
    with pytest.raises(BestieError, match=r"val\.txt"):
        check_pipeline_data(voc, min_images=1)


def test_the_pipeline_command_refuses_before_any_stage_runs(demo_root, tmp_path):
    r = invoke("labels", ["pipeline", "--work", tmp_path / "w", "--voc-root", demo_root, "--sup", "point",
                          "--batch-size", "50", "--dry-run"])
    assert_one_line_error(r, "voc", r"the training split 'train' has 9 image\(s\), fewer than fit's batch size 50")
    assert not (tmp_path / "w" / "cues.h5").exists()


def _quiet(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.mark.slow
def test_the_pipeline_runs_on_a_coco_pair_and_keeps_its_ids(coco_pair, demo_root, tmp_path, capfd):
    train, val, _ = coco_pair
    work = tmp_path / "work"
    times = run_pipeline(_coco_cfg(coco_pair, demo_root, work), log=lambda s: None)
    # each stage's command says it once, in one line, and goes on
    assert ("Warning: " + str(train) + ": skipped 1 detection-only image(s) (an annotation without a mask): "
            "image 1 (train2017/box_only.jpg)\n") in capfd.readouterr().err
    assert list(times) == ["cues", "wsss", "transfer", "report", "export", "fit", "evaluate", "evaluate-last",
                           "summary"]
    out, src = _quiet(work / "pseudo_coco.json"), _quiet(train)
    assert out.dataset["categories"] == src.dataset["categories"]
    assert {a["category_id"] for a in out.dataset["annotations"]} <= set(CAT_IDS)
    # every image but the detection-only one, with the JSON's ids and file names
    assert {i: im["file_name"] for i, im in out.imgs.items()} == {i: im["file_name"] for i, im in src.imgs.items()
                                                                  if i != 1}
    report = json.loads((work / "report.json").read_text())
    assert [c["id"] for c in report["categories"]] == CAT_IDS
    assert report["total"]["tp"] > report["total"]["num_gt"] // 2  # GT points in GT class masks
    metrics = json.loads((work / "metrics.json").read_text())
    assert 0 <= metrics["coco"]["AP50"] <= 100 and metrics["num_images"] == 3  # the val JSON's images
