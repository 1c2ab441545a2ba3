"""No silently wrong output from a store (issue 11, rule 2).

Rows, on every command that reads the store: a store whose masks have another size than the
dataset's images, a store made from another dataset with the same image ids, and damaged stores
(a class out of range, an instance id beyond the instance count, a missing dataset). Each is one
``Error:`` line naming the store, exit 1, no traceback, and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from badinput_helpers import (SIZE, TRAIN_IDS, assert_one_line_error, copy_tree, invoke, make_good_inputs, make_tiny_tree,
                              snapshot)
from store_helpers import read_image, set_array

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    base = tmp_path_factory.mktemp("stores")
    make_good_inputs(base)
    # the same image ids, other images (48 px): its stores are "of another dataset"
    other = base / "other"
    other.mkdir()
    tree = make_tiny_tree(other / "voc", size=48)
    data = ["--data", tree, "--split", "train"]
    for args in (["cues", *data, "--out", other / "cues.h5"],
                 ["wsss", *data, "--from-gt", "--out", other / "wsss.h5"],
                 ["transfer", *data, "--cues", other / "cues.h5", "--wsss", other / "wsss.h5", "--min-area", "4",
                  "--out", other / "pseudo.h5"]):
        assert invoke("labels", args).exit_code == 0
    return base


def _commands(w: Path, pseudo: Path, wsss: Path, cues: Path) -> dict:
    d = ["--data", w / "voc", "--split", "train"]
    o = w / "out"
    return {
        "export coco": ("labels", ["export", *d, "--pseudo", pseudo, "--out", o / "c.json"]),
        "export voc": ("labels", ["export", *d, "--pseudo", pseudo, "--format", "voc", "--out", o / "voc"]),
        "export bestie-txt": ("labels", ["export", *d, "--pseudo", pseudo, "--format", "bestie-txt", "--out", o / "t"]),
        "report": ("labels", ["report", *d, "--pseudo", pseudo, "--out", o / "r.json"]),
        "report --overlays": ("labels", ["report", *d, "--pseudo", pseudo, "--wsss", wsss, "--cues", cues,
                                         "--overlays", o / "ov"]),
        "transfer": ("labels", ["transfer", *d, "--cues", cues, "--wsss", wsss, "--min-area", "4", "--out", o / "p.h5"]),
        "fit": ("train", ["fit", *d, "--pseudo", pseudo, "--wsss", wsss, "--iters", "1", "--batch-size", "2",
                          "--crop", "32", "--val-split", "none", "--out", o / "run"]),
    }


READS = {"export coco": "pseudo", "export voc": "pseudo", "export bestie-txt": "pseudo", "report": "pseudo",
         "report --overlays": "pseudo", "transfer": "wsss", "fit": "pseudo"}


_edit = set_array


def _damage(kind: str, store: str, path: Path) -> str:
    """Damage one image of ``path``; returns the regular expression of the expected problem."""
    i = TRAIN_IDS[1]
    g = read_image(path, i)
    if kind == "wrong size":
        key = "instances" if store == "pseudo" else "mask"
        _edit(path, i, key, np.zeros((16, 32), g[key].dtype))
        return rf"image {i}: .* is 32x16 but the image is 32x32"
    if kind == "class out of range":
        if store == "pseudo":
            c = g["classes"].copy()
            c[0] = 9
            _edit(path, i, "classes", c)
            return rf"store is damaged: image {i}: class 9 is out of range 0..3"
        m = g["mask"].copy()
        m[0, 0] = 9
        _edit(path, i, "mask", m)
        return rf"store is damaged: image {i}: WSSS value 9 is above the class count 4"
    if kind == "instance id beyond N":
        if store != "pseudo":
            pytest.skip("wsss stores hold no instance ids")
        inst = g["instances"].copy()
        inst[0, 0] = len(g["classes"]) + 5
        _edit(path, i, "instances", inst)
        return rf"store is damaged: image {i}: instance id {len(g['classes']) + 5} but only {len(g['classes'])}"
    if kind in ("NaN center", "center outside", "NaN score"):
        if store != "pseudo":
            pytest.skip("wsss stores hold no centers or scores")
        key = "scores" if kind == "NaN score" else "centers"
        v = g[key].astype(np.float32)
        if kind == "center outside":
            v[0, 0] = SIZE + 3
        else:
            v.reshape(-1)[0] = np.nan
        _edit(path, i, key, v)
        what = {"NaN center": "a center is not a finite number", "NaN score": "a score is not a finite number",
                "center outside": f"a center lies outside the {SIZE}x{SIZE} image"}[kind]
        return rf"store is damaged: image {i}: {what}"
    key = "classes" if store == "pseudo" else "mask"
    _edit(path, i, key, None)
    return rf"store is damaged: image {i}: no '{key}' array"


@pytest.mark.parametrize("kind", ["wrong size", "class out of range", "instance id beyond N", "missing dataset",
                                  "NaN center", "center outside", "NaN score"])
@pytest.mark.parametrize("command", list(READS))
def test_wrong_size_or_damaged_store(command, kind, good, tmp_path):
    copy_tree(good / "voc", tmp_path / "voc")
    inp = copy_tree(good / "in", tmp_path / "in")
    (tmp_path / "out").mkdir()
    store = READS[command]
    problem = _damage(kind, store, inp / f"{store}.h5")
    group, argv = _commands(tmp_path, inp / "pseudo.h5", inp / "wsss.h5", inp / "cues.h5")[command]
    before = snapshot(tmp_path)
    r = invoke(group, argv)
    assert_one_line_error(r, f"{store}.h5", problem)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", list(READS))
def test_store_of_another_dataset(command, good, tmp_path):
    """Stores made from other images under the same ids (another size here) are refused by their
    dataset fingerprint, before any pixel is compared."""
    copy_tree(good / "voc", tmp_path / "voc")
    copy_tree(good / "in", tmp_path / "in")
    other = copy_tree(good / "other", tmp_path / "other")
    (tmp_path / "out").mkdir()
    store = READS[command]
    paths = {k: (other if k == store else tmp_path / "in") / f"{k}.h5" for k in ("pseudo", "wsss", "cues")}
    group, argv = _commands(tmp_path, paths["pseudo"], paths["wsss"], paths["cues"])[command]
    before = snapshot(tmp_path)
    r = invoke(group, argv)
    assert_one_line_error(r, f"other/{store}.h5", r"made from another version of split 'train'")
    assert snapshot(tmp_path) == before


def test_damaged_cues_store_in_transfer(good, tmp_path):
    """A cue outside the image or of a class out of range (transfer would index with it)."""
    copy_tree(good / "voc", tmp_path / "voc")
    inp = copy_tree(good / "in", tmp_path / "in")
    (tmp_path / "out").mkdir()
    pts = read_image(inp / "cues.h5", TRAIN_IDS[0])["points"]
    assert len(pts)
    pts[0, 2] = 7
    _edit(inp / "cues.h5", TRAIN_IDS[0], "points", pts)
    group, argv = _commands(tmp_path, inp / "pseudo.h5", inp / "wsss.h5", inp / "cues.h5")["transfer"]
    before = snapshot(tmp_path)
    r = invoke(group, argv)
    assert_one_line_error(r, "cues.h5", rf"store is damaged: image {TRAIN_IDS[0]}: cue class 7 is not in 0..3")
    assert snapshot(tmp_path) == before
