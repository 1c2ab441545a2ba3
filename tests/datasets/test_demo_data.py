"""Demo data: layout, determinism, merged same-class instances, void borders, GT points."""

from __future__ import annotations

import filecmp
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bestie_labels.pipeline.demo_data import DEMO_CLASSES, instance_points, make_demo_dataset
from bestie_labels.formats.voc_writer import instance_classes
from bestie_labels.core.errors import BestieError


def _png(path):
    with Image.open(path) as im:
        assert im.mode == "P"
        return np.asarray(im)


def _stems(root, split):
    return (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def _points(path):
    rows = [line.split() for line in path.read_text().splitlines()]
    return rows


def test_layout_and_splits(demo_root):
    assert (demo_root / "class_names.txt").read_text().split() == list(DEMO_CLASSES)
    train, val, tv = (_stems(demo_root, s) for s in ("train", "val", "trainval"))
    assert len(train) == 9 and len(val) == 3  # round(0.75 * 12)
    assert tv == train + val
    assert train[0] == "2000_000001" and val[-1] == "2000_000012"
    for s in tv:
        for sub, ext in (("JPEGImages", "jpg"), ("SegmentationClass", "png"),
                         ("SegmentationObject", "png"), ("Annotations", "xml"), ("points", "txt")):
            assert (demo_root / sub / f"{s}.{ext}").is_file(), (sub, s)
        img = cv2.imread(str(demo_root / "JPEGImages" / f"{s}.jpg"))
        assert img.shape == (64, 64, 3)


def test_masks_xml_and_points_agree(demo_root):
    total = 0
    for s in _stems(demo_root, "trainval"):
        cm = _png(demo_root / "SegmentationClass" / f"{s}.png")
        om = _png(demo_root / "SegmentationObject" / f"{s}.png")
        # Void is the same in both PNGs and never part of an instance.
        np.testing.assert_array_equal(cm == 255, om == 255)
        ids = np.unique(om[(om > 0) & (om != 255)])
        n = len(ids)
        assert n >= 1 and ids.tolist() == list(range(1, n + 1))
        # Each instance has exactly one class in the class PNG.
        for k in ids:
            assert len(np.unique(cm[om == k])) == 1
        np.testing.assert_array_equal(cm == 0, om == 0)
        classes = instance_classes(cm, om, n)
        xml = ET.parse(demo_root / "Annotations" / f"{s}.xml").getroot()
        assert xml.findtext("size/width") == "64" and xml.findtext("size/height") == "64"
        objs = xml.findall("object")
        assert [o.findtext("name") for o in objs] == [DEMO_CLASSES[c] for c in classes]
        for k, o in zip(ids, objs):
            ys, xs = np.nonzero(om == k)
            box = [int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
            assert box == [xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1]
        # One point per instance, inside its visible pixels, with its class, conf 1.000.
        rows = _points(demo_root / "points" / f"{s}.txt")
        assert len(rows) == n
        for k, (x, y, c, conf) in zip(ids, rows):
            assert conf == "1.000"
            assert om[int(y), int(x)] == k and int(c) == classes[k - 1]
        total += n
    assert total >= 24  # several instances per image on average


def test_void_is_a_band_on_every_outline(demo_root):
    for s in _stems(demo_root, "trainval"):
        om = _png(demo_root / "SegmentationObject" / f"{s}.png")
        void = om == 255
        # Every pixel next to a different instance id (4-neighbour) touches the void band:
        # two different non-void labels are never adjacent.
        a, b = om[:, :-1], om[:, 1:]
        assert not ((a != b) & (a != 255) & (b != 255)).any()
        a, b = om[:-1], om[1:]
        assert not ((a != b) & (a != 255) & (b != 255)).any()
        # The band is thin: every void pixel is within 3 px of a non-void pixel (1 px except
        # where outlines meet and eat thin slivers).
        near = cv2.dilate((~void).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        assert (near | ~void).all()
        # ... and about 2 px wide: void area ~ 2 x the outline length of the objects.
        fg = ((om > 0) | void).astype(np.uint8)
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outer = sum(len(c) for c in contours)
        assert 1.5 * outer <= void.sum() <= 0.25 * void.size + 1.5 * outer


def test_same_class_instances_touch_in_a_good_share_of_images(tmp_path):
    root = make_demo_dataset(tmp_path / "d", n_images=40, size=96, seed=3)
    merged = 0
    k5 = np.ones((5, 5), np.uint8)
    for s in _stems(root, "trainval"):
        om = _png(root / "SegmentationObject" / f"{s}.png")
        cm = _png(root / "SegmentationClass" / f"{s}.png")
        # Same-class instances separated only by the void band merge into one blob once the
        # band is filled: a class component (void included) holding two instances.
        found = False
        for c in np.unique(cm[(cm > 0) & (cm != 255)]):
            region = ((cm == c) | (cm == 255)).astype(np.uint8)
            region &= cv2.dilate((cm == c).astype(np.uint8), k5)
            _, comp = cv2.connectedComponents(region, connectivity=8)
            inside = (om > 0) & (om != 255) & (cm == c)
            pairs = np.unique(np.stack([comp[inside], om[inside]]), axis=1)
            if len(pairs[0]) > len(np.unique(pairs[0])):
                found = True
        merged += found
    assert merged / 40 >= 0.4, merged


def test_deterministic_and_prefix_stable(tmp_path):
    a = make_demo_dataset(tmp_path / "a", n_images=6, size=48, seed=7)
    b = make_demo_dataset(tmp_path / "b", n_images=6, size=48, seed=7)
    c = make_demo_dataset(tmp_path / "c", n_images=6, size=48, seed=8)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 6 * 5 + 4  # 5 files per image, 3 split files, class_names.txt
    for f in files:
        assert filecmp.cmp(a / f, b / f, shallow=False), f
    assert not filecmp.cmp(a / "JPEGImages/2000_000001.jpg", c / "JPEGImages/2000_000001.jpg",
                           shallow=False)
    # Image i depends only on (seed, i): a shorter run gives the same first images.
    d = make_demo_dataset(tmp_path / "d", n_images=3, size=48, seed=7)
    for s in ("2000_000001", "2000_000003"):
        for f in (f"JPEGImages/{s}.jpg", f"SegmentationObject/{s}.png", f"points/{s}.txt"):
            assert filecmp.cmp(a / f, d / f, shallow=False), f


def test_refuses_existing_output_unless_forced(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(BestieError, match="output exists"):
        make_demo_dataset(out, n_images=2, size=32)
    assert (out / "keep.txt").exists()
    make_demo_dataset(out, n_images=2, size=32, force=True)
    assert not (out / "keep.txt").exists() and (out / "class_names.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no temporary folder left


def test_instance_points_hand_case():
    inst = np.zeros((9, 9), np.uint8)
    inst[1:8, 1:8] = 1  # 7x7 square: deepest pixel is its centre (4, 4)
    inst[0, 0] = 255
    pts = instance_points(inst, np.array([2]))
    np.testing.assert_array_equal(pts, [[4, 4, 2, 1.0]])


def test_instance_classes_majority():
    cm = np.array([[1, 1, 2, 255], [0, 3, 3, 3]], np.uint8)
    om = np.array([[1, 1, 1, 255], [0, 2, 2, 2]], np.uint8)
    np.testing.assert_array_equal(instance_classes(cm, om, 3), [0, 2, -1])


def test_cli_demo_data(tmp_path):
    from bestie_cli.labels import main

    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["demo-data", str(out), "--images", "4", "--size", "48", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert len(_stems(out, "trainval")) == 4 and len(_stems(out, "train")) == 3
    r = CliRunner().invoke(main, ["demo-data", str(out), "--images", "4", "--size", "48", "--seed", "1"])
    assert r.exit_code == 0 and "is up to date" in r.output, r.output
    # other options: its own tree is replaced (demo-data is a stage like the others)
    r = CliRunner().invoke(main, ["demo-data", str(out), "--images", "4", "--size", "48"])
    assert r.exit_code == 0 and "wrote 4 images" in r.output, r.output
    # a folder it did not write is refused
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    r = CliRunner().invoke(main, ["demo-data", str(tmp_path / "mine"), "--images", "4", "--size", "48"])
    assert r.exit_code == 1 and "output exists" in r.output
