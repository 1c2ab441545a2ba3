"""Validation never scores training images: COCO / split-less folders need --val-data."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bestie_labels.datasets import check_disjoint, open_dataset
from bestie_labels.datasets.validation import open_validation
from bestie_labels.core.errors import BestieError


def _coco(tmp_path, name, ids):
    imgs = tmp_path / "imgs"
    imgs.mkdir(exist_ok=True)
    images = []
    for i in ids:
        cv2.imwrite(str(imgs / f"im{i}.jpg"), np.zeros((6, 8, 3), np.uint8))
        images.append({"id": i, "file_name": f"im{i}.jpg", "height": 6, "width": 8})
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"images": images, "annotations": [],
                                "categories": [{"id": 1, "name": "cat"}]}))
    return path, imgs


def test_coco_has_no_val_split(tmp_path):
    train_json, imgs = _coco(tmp_path, "instances_train2017", [1, 2, 3])
    train = open_dataset(train_json, "train", images=imgs)
    assert train.split == "instances_train2017"
    # default --val-split: no validation, and a line saying why
    val, warning = open_validation(train, train_json, "val", images=imgs)
    assert val is None and "a COCO JSON has no splits" in warning and "--val-data" in warning
    # an explicit --val-split is refused: it would be the training images under another name
    with pytest.raises(BestieError, match="has no splits, so there is no validation split 'val'"):
        open_validation(train, train_json, "val", explicit=True, images=imgs)
    # --val-data: another JSON
    val_json, _ = _coco(tmp_path, "instances_val2017", [4, 5])
    val, warning = open_validation(train, train_json, "val", images=imgs, val_data=val_json, val_images=imgs)
    assert warning is None and val.split == "instances_val2017" and val.image_ids == ["im4", "im5"]
    # --val-data naming the training JSON again is refused
    with pytest.raises(BestieError, match="shares 3 of its 3 images with the training data"):
        open_validation(train, train_json, "val", images=imgs, val_data=train_json, val_images=imgs)


def test_voc_val_split_and_overlap(demo_root, tmp_path):
    train = open_dataset(demo_root, "train")
    val, warning = open_validation(train, demo_root, "val")
    assert warning is None and val.split == "val" and len(val) == 3
    assert open_validation(train, demo_root, "none") == (None, None)
    # a split file that repeats a training image is caught by file, not by split name
    root = tmp_path / "voc"
    shutil.copytree(demo_root, root)
    (root / "ImageSets/Segmentation/val.txt").write_text("2000_000010\n2000_000001\n")
    with pytest.raises(BestieError, match=r"shares 1 of its 2 images .* \(first: 2000_000001\)"):
        check_disjoint(open_dataset(root, "train"), open_dataset(root, "val"))
    # a missing default split only warns; a missing explicit one is an error
    val, warning = open_validation(train, demo_root, "test")
    assert val is None and "split file not found" in warning
    with pytest.raises(BestieError, match="split file not found"):
        open_validation(train, demo_root, "test", explicit=True)


def test_train_pam_cli_refuses_val_on_coco_training_images(tmp_path):
    from bestie_cli.labels_train_pam import command

    train_json, imgs = _coco(tmp_path, "instances_train2017", [1, 2])
    r = CliRunner().invoke(command, ["--data", str(train_json), "--images", str(imgs), "--out",
                                     str(tmp_path / "pam.pt"), "--val-split", "val", "--backbone", "tiny"])
    assert r.exit_code == 1 and "has no splits" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "pam.pt").exists()
