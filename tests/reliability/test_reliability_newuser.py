"""What a new user hit (issue 11, rule 5): each case as the user ran it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from badinput_helpers import (TRAIN_IDS, copy_tree, invoke, make_good_inputs, make_train_checkpoint,
                              snapshot, zero_tail)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    base = tmp_path_factory.mktemp("newuser")
    make_good_inputs(base)
    return base


# --- pipeline --dry-run -------------------------------------------------------------------------
def test_dry_run_writes_no_stamp_and_sees_changes(tmp_path):
    from bestie_labels.pipeline import plan as P

    work = tmp_path / "work"
    cfg = P.PipelineConfig(work=str(work), demo_images=8, demo_size=32)
    stages = P.build_stages(cfg)
    P.write_stamps(cfg, stages)
    for s in stages:  # as after a finished run: outputs and done markers
        Path(s.output).parent.mkdir(parents=True, exist_ok=True)
        Path(s.output).touch()
        P._done(cfg, s).touch()
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (work / ".stamps").iterdir()}
    args = ["pipeline", "--work", work, "--demo-images", "8", "--demo-size", "32", "--dry-run"]
    r = invoke("labels", args)
    assert r.exit_code == 0, r.output
    first, *lines = r.output.splitlines()
    assert first.startswith("configuration: CPU recipe") and len(lines) == len(stages), r.output
    assert all(line.startswith("current") for line in lines), r.output
    args[args.index("--demo-images") + 1] = "12"  # another demo size: everything reruns
    for _ in range(2):  # the second dry run sees the same change: the first rewrote nothing
        r = invoke("labels", args)
        assert r.exit_code == 0, r.output
        lines = r.output.splitlines()[1:]
        assert len(lines) == len(stages) and all(line.startswith("to run") for line in lines), r.output
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (work / ".stamps").iterdir()}
    assert after == before


# --- demo-data is a stage -----------------------------------------------------------------------
def test_demo_data_reruns_on_new_options_and_is_up_to_date_otherwise(tmp_path):
    out = tmp_path / "work" / "demo"
    args = ["demo-data", out, "--images", "4", "--size", "32", "--seed", "0"]
    assert invoke("labels", args).exit_code == 0
    first = snapshot(out)
    r = invoke("labels", args)
    assert r.exit_code == 0 and "is up to date" in r.output, r.output
    assert snapshot(out) == first
    # a copied work folder is up to date too
    copy = shutil.copytree(tmp_path / "work", tmp_path / "copy")
    r = invoke("labels", ["demo-data", copy / "demo", *args[2:]])
    assert r.exit_code == 0 and "is up to date" in r.output, r.output
    # other options: the tree is replaced (no "output exists")
    for opt, val in (("--images", "6"), ("--size", "48"), ("--seed", "1")):
        a = list(args)
        a[a.index(opt) + 1] = val
        r = invoke("labels", a)
        assert r.exit_code == 0 and "wrote" in r.output, r.output
        assert snapshot(out) != first
    # a file the user put in the tree is never removed: other options are then refused
    (out / "notes.txt").write_text("mine")
    r = invoke("labels", args)
    assert r.exit_code == 1 and "did not write (notes.txt" in r.output, r.output
    assert (out / "notes.txt").read_text() == "mine"
    # a folder demo-data did not make is refused
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    r = invoke("labels", ["demo-data", tmp_path / "mine", "--images", "2", "--size", "32"])
    assert r.exit_code == 1 and "not written by `bestie-labels demo-data`" in r.output, r.output


# --- fit: identical curves after a resume, extending a finished run ---------------------------
def _fit_args(good: Path, out: Path, iters: int, *extra) -> list:
    return ["fit", "--data", good / "voc", "--split", "train", "--pseudo", good / "in" / "pseudo.h5", "--wsss",
            good / "in" / "wsss.h5", "--iters", str(iters), "--batch-size", "2", "--crop", "32", "--val-split", "none",
            "--threads", "1", "--out", out, *extra]


def _curve(run: Path) -> list:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "it_per_s"} for r in rows]


def test_resumed_fit_writes_identical_curves(good, tmp_path):
    """log every 3 iterations, stopped after 2: the first line after the resume averages the
    iterations of both runs, as the uninterrupted run does."""
    from bestie_labels.datasets import open_dataset
    from bestie_train.fit import fit

    ds = open_dataset(good / "voc", "train")
    opts = dict(backbone="tiny", iters=6, batch_size=2, crop=32, log_every=3, ckpt_every=100, val_every=100,
                threads=1, seed=1)
    fit(ds, good / "in" / "pseudo.h5", good / "in" / "wsss.h5", tmp_path / "a", progress=False, **opts)
    fit(ds, good / "in" / "pseudo.h5", good / "in" / "wsss.h5", tmp_path / "b", progress=False, stop_after=2, **opts)
    fit(ds, good / "in" / "pseudo.h5", good / "in" / "wsss.h5", tmp_path / "b", progress=False, resume=True, **opts)
    a, b = _curve(tmp_path / "a"), _curve(tmp_path / "b")
    assert [r["iter"] for r in a] == [3, 6]
    assert a == b


def test_finished_fit_extended_with_more_iterations(good, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", _fit_args(good, run, 2)).exit_code == 0
    r = invoke("train", _fit_args(good, run, 4, "--resume"))
    assert r.exit_code == 0 and "trained 4/4 iterations" in r.output, r.output
    assert [x["iter"] for x in _curve(run)] == [1, 2, 3, 4] or [x["iter"] for x in _curve(run)][-1] == 4
    import torch

    assert torch.load(run / "last.pt", weights_only=True)["iteration"] == 4
    assert torch.load(run / "best.pt", weights_only=True)["iteration"] == 4
    r = invoke("train", _fit_args(good, run, 3, "--resume"))  # fewer iterations than done: refused
    assert r.exit_code == 1 and "iters: 4 -> 3 (it may only grow)" in r.output, r.output


# --- report on a folder dataset (no GT) --------------------------------------------------------
def test_report_on_a_folder_dataset_without_gt(good, tmp_path):
    voc = copy_tree(good / "voc", tmp_path / "voc")
    root = tmp_path / "folder"
    root.mkdir()
    names = (voc / "class_names.txt").read_text()
    (root / "class_names.txt").write_text(names)
    from bestie_labels.datasets import open_dataset

    ds = open_dataset(voc, "train")
    rows = ["image,classes"]
    for rec in ds.records:
        shutil.copy(rec.file_name, root / f"{rec.image_id}.jpg")
        rows.append(f"{rec.image_id}.jpg," + ";".join(ds.class_names[k] for k in rec.labels.nonzero()[0]))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    d = ["--data", root, "--split", "train"]
    for a in (["cues", *d, "--points", voc / "points", "--out", tmp_path / "cues.h5"],
              ["wsss", *d, "--import", _class_pngs(ds, tmp_path / "masks"), "--out", tmp_path / "wsss.h5"],
              ["transfer", *d, "--cues", tmp_path / "cues.h5", "--wsss", tmp_path / "wsss.h5", "--min-area", "4",
               "--out", tmp_path / "pseudo.h5"]):
        r = invoke("labels", a)
        assert r.exit_code == 0, r.output
    # --wsss as the pipeline passes it: without GT there is no mIoU, and no error either
    r = invoke("labels", ["report", *d, "--pseudo", tmp_path / "pseudo.h5", "--out", tmp_path / "report.json",
                          "--overlays", tmp_path / "ov", "--wsss", tmp_path / "wsss.h5"])
    assert r.exit_code == 0, r.output
    assert "precision and recall need GT" in r.output and "mIoU" not in r.output
    r = invoke("labels", ["report", *d, "--wsss", tmp_path / "wsss.h5"])
    assert r.exit_code == 1 and "folder: no image of split 'all' has GT masks: no mIoU" in r.output, r.output
    rep = json.loads((tmp_path / "report.json").read_text())
    from bestie_labels.store.file import Store

    with Store(tmp_path / "pseudo.h5") as s:
        n = sum(len(s.read(i)["classes"]) for i in s.image_ids)
    assert rep["total"]["num_pseudo"] == n > 0
    assert rep["total"]["precision"] is None and rep["total"]["recall"] is None and rep["total"]["num_gt"] is None
    assert "wsss" not in rep
    assert sorted(p.name for p in (tmp_path / "ov").glob("*.png")) == sorted(f"{i}.png" for i in TRAIN_IDS)


def _class_pngs(ds, folder: Path) -> Path:
    """The GT class masks of ``ds`` (a VOC split) as index PNGs, for ``wsss --import``."""
    from badinput_helpers import write_palette_png

    folder.mkdir()
    for rec in ds.records:
        write_palette_png(folder / f"{rec.image_id}.png", ds.load_gt(rec).semantic())
    return folder


# --- percent in every JSON ------------------------------------------------------------------------
def test_report_json_is_in_percent(good, tmp_path):
    r = invoke("labels", ["report", "--data", good / "voc", "--split", "train", "--pseudo", good / "in" / "pseudo.h5",
                          "--out", tmp_path / "report.json"])
    assert r.exit_code == 0, r.output
    t = json.loads((tmp_path / "report.json").read_text())["total"]
    assert t["tp"] > 0
    assert t["precision"] == pytest.approx(100 * t["tp"] / t["num_pseudo"])
    assert t["recall"] == pytest.approx(100 * t["tp"] / t["num_gt"])


# --- one default split ----------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["predict", "evaluate"])
def test_bestie_train_defaults_to_val(cmd, good, tmp_path):
    names = (good / "voc" / "class_names.txt").read_text().split()
    ck = make_train_checkpoint(tmp_path / "m.pt", names)
    from bestie_cli.train import main

    opt = next(p for p in main.get_command(None, cmd).params if p.name == "split")
    assert opt.default == "val"
    r = invoke("train", [cmd, "--checkpoint", ck, "--data", good / "voc", "--out", tmp_path / "o.json"])
    assert r.exit_code == 0, r.output
    if cmd == "predict":
        from bestie_labels.datasets import open_dataset

        val = {rec.coco_id for rec in open_dataset(good / "voc", "val").records}
        assert {p["image_id"] for p in json.loads((tmp_path / "o.json").read_text())} <= val


# --- the Error line in a log file -----------------------------------------------------------------
def test_error_line_starts_its_own_line_in_a_log(good, tmp_path):
    """fit draws its bar into a log file (not a terminal); a bad image half way: the Error line
    must start a line of the log, and the bar is redrawn rarely."""
    voc = copy_tree(good / "voc", tmp_path / "voc")
    zero_tail(voc / "JPEGImages" / f"{TRAIN_IDS[2]}.jpg")
    args = _fit_args(good, tmp_path / "run", 30)
    args[args.index("--data") + 1] = voc
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(ROOT), os.environ.get("PYTHONPATH", "")])}
    exe = Path(sys.executable).with_name("bestie-train")
    with open(tmp_path / "log.txt", "w") as log:
        p = subprocess.run([exe, *map(str, args)], stdout=log, stderr=subprocess.STDOUT, env=env, timeout=300)
    text = (tmp_path / "log.txt").read_bytes().decode()  # not read_text: it turns "\r" into "\n"
    assert p.returncode == 1, text
    lines = text.split("\n")
    assert any(ln.startswith(f"Error: {voc / 'JPEGImages' / TRAIN_IDS[2]}.jpg: truncated JPEG") for ln in lines), repr(text)
    assert "Traceback" not in text
