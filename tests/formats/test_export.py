"""Export of pseudo stores (COCO JSON, VOC PNGs, BESTIE text) and the RLE helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from bestie_labels.core import rle
from bestie_labels.datasets.base import Dataset, Record
from bestie_labels.formats.coco_json import export_coco, results_to_coco_instances
from bestie_labels.formats.label_trees import export_bestie_txt, export_voc, pseudo_to_voc
from bestie_labels.core.fileio import read_index_png
from bestie_labels.store.file import Store, StoreWriter


def _dataset(tmp_path):
    recs = []
    for stem, (h, w) in (("2008_000001", (6, 8)), ("2008_000002", (5, 4))):
        f = tmp_path / "JPEGImages" / f"{stem}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")
        recs.append(Record(stem, str(f), h, w, np.array([True, True, False])))
    return Dataset(tmp_path, "train", ["cat", "dog", "cow"], recs)


def _pseudo(tmp_path, ds):
    """Image 1: instance 1 (class 1) = rows 1-2, cols 2-4; instance 2 (class 0) = (4, 6), (5, 6)
    and (5, 7). Image 2: no instance."""
    inst = np.zeros((6, 8), np.uint16)
    inst[1:3, 2:5] = 1
    inst[4, 6] = inst[5, 6] = inst[5, 7] = 2
    arrays = {
        "2008_000001": dict(instances=inst, classes=np.array([1, 0], np.int32),
                            centers=np.array([[3.0, 1.5], [6.3, 4.7]], np.float32),
                            scores=np.array([0.9, 0.75], np.float32)),
        "2008_000002": dict(instances=np.zeros((5, 4), np.uint16), classes=np.zeros(0, np.int32),
                            centers=np.zeros((0, 2), np.float32), scores=np.zeros(0, np.float32)),
    }
    w = StoreWriter(tmp_path / "pseudo.h5", "pseudo", {}, {"data": ds.fingerprint()}, ds.image_ids)
    for i in w.pending:
        w.add(i, arrays[i])
    return Store(w.finish(), stage="pseudo"), inst


def test_rle_roundtrip_bbox_area():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 7, 9)) < 0.3
    masks[2] = False
    enc = rle.encode(masks)
    assert all(isinstance(r["counts"], str) and r["size"] == [7, 9] for r in enc)
    np.testing.assert_array_equal(rle.decode(enc), masks)
    np.testing.assert_array_equal(rle.decode(enc[0]), masks[0])
    np.testing.assert_array_equal(rle.area(enc), masks.sum((1, 2)))
    one = np.zeros((7, 9), bool)
    one[2:5, 3:8] = True  # x 3..7, y 2..4
    np.testing.assert_array_equal(rle.bbox(rle.encode(one)), [3, 2, 5, 3])
    assert rle.area(rle.encode(one)) == 15
    inst = np.array([[0, 1], [2, 2]], np.uint16)
    np.testing.assert_array_equal(rle.instance_masks(inst), [[[0, 1], [0, 0]], [[0, 0], [1, 1]]])


def test_export_coco_loads_with_pycocotools(tmp_path):
    ds = _dataset(tmp_path)
    store, inst = _pseudo(tmp_path, ds)
    out = tmp_path / "coco.json"
    with store:
        counts = export_coco(ds, store, out)
    assert counts == {"images": 2, "instances": 2}
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [2008000001, 2008000002]
    assert coco.loadImgs(2008000001)[0] == {"id": 2008000001, "file_name": "2008_000001.jpg",
                                            "height": 6, "width": 8}
    assert [c["id"] for c in coco.loadCats(coco.getCatIds())] == [1, 2, 3]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[2008000001]))
    assert [a["category_id"] for a in anns] == [2, 1]  # classes 1, 0 -> ids 2, 1
    assert [a["bbox"] for a in anns] == [[2.0, 1.0, 3.0, 2.0], [6.0, 4.0, 2.0, 2.0]]
    assert [a["area"] for a in anns] == [6, 3]
    assert all(a["iscrowd"] == 0 and isinstance(a["segmentation"]["counts"], str) for a in anns)
    for n, a in enumerate(anns, start=1):
        np.testing.assert_array_equal(coco.annToMask(a).astype(bool), inst == n)
    assert coco.getAnnIds(imgIds=[2008000002]) == []


def test_export_voc_and_txt(tmp_path):
    ds = _dataset(tmp_path)
    store, inst = _pseudo(tmp_path, ds)
    with store:
        assert export_voc(ds, store, tmp_path / "voc") == {"images": 2, "instances": 2}
        export_bestie_txt(ds, store, tmp_path / "txt")
        # A second export replaces the first; other files in the folder are never touched.
        export_voc(ds, store, tmp_path / "voc")
        (tmp_path / "mine" / "SegmentationObject").mkdir(parents=True)
        (tmp_path / "mine" / "notes.txt").write_text("keep")
        (tmp_path / "mine" / "SegmentationObject" / "2011_000001.png").write_text("other split")
        export_voc(ds, store, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert (tmp_path / "mine" / "SegmentationObject" / "2011_000001.png").read_text() == "other split"
    assert len(list((tmp_path / "mine" / "SegmentationClass").iterdir())) == 2
    obj = read_index_png(tmp_path / "voc" / "SegmentationObject" / "2008_000001.png")
    cls = read_index_png(tmp_path / "voc" / "SegmentationClass" / "2008_000001.png")
    np.testing.assert_array_equal(obj, inst)
    expect = np.zeros((6, 8), np.uint8)
    expect[inst == 1] = 2  # class 1 -> index 2
    expect[inst == 2] = 1
    np.testing.assert_array_equal(cls, expect)
    assert not read_index_png(tmp_path / "voc" / "SegmentationClass" / "2008_000002.png").any()
    assert (tmp_path / "txt" / "Center_points" / "2008_000001.txt").read_text() == "3 1 1 0.900\n6 4 0 0.750\n"
    assert (tmp_path / "txt" / "Center_points" / "2008_000002.txt").read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_pseudo_to_voc_refuses_too_many_instances():
    with pytest.raises(ValueError, match="at most 254"):
        pseudo_to_voc(np.zeros((2, 2), np.uint16), np.zeros(300, np.int32))


def test_results_to_coco_instances(tmp_path):
    ds = _dataset(tmp_path)
    m = np.zeros((2, 6, 8), bool)
    m[0, 0, 0] = True
    m[1, 2:4, 1:3] = True
    js = results_to_coco_instances(ds, [{"image_id": 2008000001, "masks": m, "classes": np.array([2, 0]),
                                         "scores": np.array([0.5, 0.25])}])
    assert [i["id"] for i in js["images"]] == [2008000001]
    assert [(a["id"], a["category_id"], a["score"], a["area"]) for a in js["annotations"]] == \
        [(1, 3, 0.5, 1), (2, 1, 0.25, 4)]
    (tmp_path / "r.json").write_text(json.dumps(js))
    coco = COCO(str(tmp_path / "r.json"))
    np.testing.assert_array_equal(coco.annToMask(coco.anns[2]).astype(bool), m[1])


def test_overlay_panels():
    from bestie_labels.viz.drawing import overlay_panels
    from bestie_labels.core.fileio import voc_palette

    img = np.full((40, 50, 3), 100, np.uint8)
    inst = np.zeros((40, 50), np.uint16)
    inst[10:30, 5:25] = 1
    p = overlay_panels(img, None, np.array([[40, 20, 1, 0.9]], np.float32), inst, np.array([1], np.int32),
                       np.array([[15.0, 20.0]], np.float32))
    assert p.shape == (40, 4 * 50 + 3 * 4, 3) and p.dtype == np.uint8
    np.testing.assert_array_equal(p[:, :50], img)
    assert (p[:, 50:54] == 255).all()  # white separators
    wsss_panel, cues_panel, inst_panel = p[:, 54:104], p[:, 108:158], p[:, 162:212]
    assert (wsss_panel[30:, 30:] == 96).all()  # no WSSS store: a grey panel
    np.testing.assert_array_equal(cues_panel[20, 40], voc_palette()[2])  # class 1 -> palette 2
    np.testing.assert_array_equal(cues_panel[0, 0], [114, 114, 114])  # image dimmed
    assert (inst_panel[10, 5:25] == 255).all()  # outline
    assert (inst_panel[15, 10] != img[15, 10]).any() and (inst_panel[5, 40] == img[5, 40]).all()
