"""The HTML reports without a browser: drawing by hand, per-image statistics, the cache (only
changed images are redrawn), ownership of the folder's files, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bestie_labels.algorithms.matching import match_instances
from bestie_labels.datasets.base import GtInstances
from bestie_labels.viz.drawing import class_mask_layer, composite, instance_layer, paint_masks
from bestie_labels.viz.html.labels_summary import write_labels_report
from bestie_labels.viz.palette import FP_COLOUR, MISSED_COLOUR, TP_COLOUR, legend_entries
from html_helpers import WORST, drop_instances, tiny_run
from store_helpers import edit_store


def test_instance_layer_outlines_tp_green_fp_red():
    inst = np.zeros((20, 30), np.uint16)
    inst[2:10, 2:10] = 1
    inst[12:18, 15:28] = 2
    lay = instance_layer(inst, None, np.stack([TP_COLOUR, FP_COLOUR]), thickness=1)
    np.testing.assert_array_equal(lay[2, 5, :3], TP_COLOUR)      # top edge of instance 1
    np.testing.assert_array_equal(lay[17, 20, :3], FP_COLOUR)    # bottom edge of instance 2
    assert lay[2, 5, 3] == 255 and lay[5, 5, 3] == int(255 * 0.55) and lay[0, 0, 3] == 0
    assert not (lay[5, 5, :3] == TP_COLOUR).all()                # inside: the fill colour


def test_class_mask_layer_and_legend_by_hand():
    mask = np.array([[0, 1, 1], [3, 3, 255]], np.uint8)
    lay = class_mask_layer(mask, alpha=0.5)
    assert lay[0, 0, 3] == 0 and lay[0, 1, 3] == 127 and tuple(lay[1, 2, :3]) == (255, 255, 255)
    np.testing.assert_array_equal(composite(np.zeros((2, 3, 3), np.uint8), lay)[0, 0], [0, 0, 0])
    ent = legend_entries(mask, ["aero", "bike", "bird"])
    assert [(e["name"], e["pixels"]) for e in ent] == [("background", 1), ("aero", 2), ("bird", 2), ("void", 1)]
    assert ent[1]["colour"] == "#800000"  # VOC palette 1


def test_paint_masks_highest_score_on_top():
    m = np.zeros((3, 2, 2), bool)
    m[0, 0] = True
    m[1, :, 0] = True
    m[2, 1, 1] = True
    np.testing.assert_array_equal(paint_masks(m, [0.2, 0.9, 0.5], 2, 2), [[2, 1], [2, 3]])


def test_match_instances_with_overlapping_masks():
    g = np.zeros((2, 4, 4), bool)
    g[0, :2] = True
    g[1, 2:] = True
    gt = GtInstances(masks=g, classes=np.array([0, 0]), crowd=np.zeros(2, bool), void=np.zeros((4, 4), bool))
    p = np.stack([g[0], g[0] | g[1][:1], g[1]])  # p1 overlaps p0 (pixels of both)
    m = match_instances({"masks": p, "classes": np.array([0, 0, 0]), "scores": np.array([0.5, 0.9, 0.4])}, gt)
    # p1 (highest score) takes GT 0 (IoU 1), p0 then finds GT 0 taken; p2 takes GT 1
    np.testing.assert_array_equal(m["gt"], [-1, 0, 1])
    assert m["gt_matched"].all()


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory):
    return tiny_run(demo_root, tmp_path_factory.mktemp("html"))


def _report(ds, work, out, **kw):
    return write_labels_report(ds, work / "pseudo.h5", out, wsss=work / "wsss.h5", cues=work / "cues.h5",
                               progress=False, **kw)


def _data(out) -> dict:
    js = (out / "data.js").read_text()
    return json.loads(js[js.index("=") + 1:].strip().rstrip(";"))


def test_stats_summary_and_second_run(run, tmp_path):
    ds, work = run
    out = tmp_path / "html"
    r = _report(ds, work, out, report={"lost": {"total": {"no_cue": 3}, "per_class": {ds.class_names[1]: {"no_cue": 3}}}})
    assert r["images"] == len(ds) and r["written"] == 7 * len(ds) + 8  # 7 per image; 2 static, data, 3 plots, 2 pages
    rows = {x["id"]: x for x in _data(out)["images"]}
    assert set(rows) == set(ds.image_ids)
    gt = ds.load_gt(ds.record(WORST))
    assert rows[WORST]["recall"] == 0 and rows[WORST]["pseudo"] == 0 and rows[WORST]["missed"] == len(gt.classes)
    index = (out / "index.html").read_text()
    assert "lost: no_cue" in index and (out / "plots" / "lost.png").is_file()
    # the same inputs: nothing rewritten (lost.png is no longer asked for, but never removed)
    assert _report(ds, work, out)["written"] == 1  # index.html: the lost columns are gone


def test_changed_image_only_is_redrawn(run, tmp_path):
    import shutil

    ds, work = run
    work = shutil.copytree(work, tmp_path / "work")  # this test edits a store
    out = tmp_path / "html"
    _report(ds, work, out)
    other = sorted(i for i in ds.image_ids if i != WORST)[0]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    edit_store(work / "pseudo.h5", other, drop_instances)
    r = _report(ds, work, out)
    changed = sorted(str(p.relative_to(out)) for p in before if p.stat().st_mtime_ns != before[p])
    assert all(other in c or c in ("data.js", "index.html", "plots/outcomes.png", "plots/quality.png",
                                   ".bestie-html.json") for c in changed)
    assert f"pages/{other}.html" in changed and f"img/{other}.pseudo.png" in changed
    assert f"img/{other}.jpg" not in changed  # same bytes: not rewritten
    assert r["written"] == len([c for c in changed if c != ".bestie-html.json"])


def test_a_file_the_report_did_not_write_is_refused(run, tmp_path):
    from bestie_labels.core.errors import BestieError

    ds, work = run
    out = tmp_path / "html"
    (out / "pages").mkdir(parents=True)
    mine = out / "pages" / f"{WORST}.html"
    mine.write_text("my notes")
    with pytest.raises(BestieError, match="not written by this HTML report"):
        _report(ds, work, out)
    assert mine.read_text() == "my notes"
    _report(ds, work, out, force=True)
    assert "BestieSite.imagePage" in mine.read_text()


def test_cli_report_html(run, tmp_path, demo_root):
    from bestie_cli.labels import main

    ds, work = run
    out = tmp_path / "site"
    r = CliRunner().invoke(main, ["report", "--data", str(demo_root), "--split", "train", "--pseudo",
                                  str(work / "pseudo.h5"), "--html", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"({len(ds)} images" in r.output and str(out / "index.html") in r.output
    # the stores next to pseudo.h5 that made it are found: the cue and WSSS panels are drawn
    assert (out / "img" / f"{WORST}.cues.png").is_file() and (out / "img" / f"{WORST}.wsss.png").is_file()
    r = CliRunner().invoke(main, ["report", "--data", str(demo_root), "--split", "train", "--html", str(out),
                                  "--wsss", str(work / "wsss.h5")])
    assert r.exit_code != 0 and "--html needs --pseudo" in r.output


def test_map_iou_is_mask_iou_of_the_one_hot_masks():
    from bestie_labels.algorithms.matching import map_iou, mask_iou

    rng = np.random.default_rng(3)
    inst = rng.integers(0, 5, (12, 15))
    inst[inst == 3] = 0          # an instance with no pixel: IoU 0 against everything
    g = rng.random((4, 12, 15)) < 0.3
    g[2] = False                 # an empty GT mask
    one_hot = inst[None] == np.arange(1, 5)[:, None, None]
    np.testing.assert_allclose(map_iou(inst, 4, g), mask_iou(one_hot, g))


def test_matched_gt_and_match_instances_agree_with_the_counts():
    from bestie_labels.algorithms.matching import TP, match_pseudo_to_gt, matched_gt

    g = np.zeros((3, 6, 6), bool)
    g[0, :3, :3] = g[1, 3:, 3:] = g[2, :3, 3:] = True
    gt = GtInstances(masks=g, classes=np.array([0, 1, 1]), crowd=np.array([False, False, True]),
                     void=np.zeros((6, 6), bool))
    inst = np.zeros((6, 6), np.uint16)
    inst[:3, :3] = 1   # GT 0 exactly
    inst[:3, 3:] = 2   # the crowd region: never matched
    pseudo = {"instances": inst, "classes": np.array([0, 1]), "scores": np.array([0.9, 0.8])}
    np.testing.assert_array_equal(matched_gt(pseudo, gt), [True, False, False])
    m = match_instances(pseudo, gt)
    np.testing.assert_array_equal(m["gt"], [0, -1])
    assert m["iou"][0] == 1.0 and list(m["gt_counted"]) == [True, True, False]
    np.testing.assert_array_equal(match_pseudo_to_gt(pseudo, gt, 2)[:, TP], [1, 0])


def test_zoom_keeps_points_on_their_pixels():
    from bestie_labels.viz.drawing import zoom_factor, zoom_labels, zoom_points

    assert zoom_factor(128) == 3 and zoom_factor(320) == 1 and zoom_factor(500) == 1
    lab = np.array([[0, 1], [2, 0]])
    big = zoom_labels(lab, 3)
    pts = zoom_points(np.array([[1, 0, 5, 0.9], [0, 1, 2, 0.5]], np.float32), 3)
    # pixel (x 1, y 0) becomes the centre (4, 1) of its 3x3 block, which holds its label
    np.testing.assert_array_equal(pts[:, :2], [[4, 1], [1, 4]])
    assert [big[int(y), int(x)] for x, y in pts[:, :2]] == [1, 2] and pts[0, 2] == 5
