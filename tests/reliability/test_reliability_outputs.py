"""No command deletes or overwrites a file it did not write (issue 11, rule 1), and one run per
output (rule 2, locks).

Rows of the matrix, on every command they apply to:

* *foreign output*: ``--out`` names an existing file another program (or another bestie
  command) wrote: refused in one line, the file unchanged; ``--force`` replaces it; a rerun of the
  same command replaces its own output without ``--force``;
* *output is an input*: refused even with ``--force``, every file unchanged;
* *folder outputs*: files of other splits and a README in the output folders survive;
* *concurrent runs*: while another process holds an output's lock the command is refused in one
  line naming the holder's pid; a lock left by a dead process is taken over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from badinput_helpers import (gt_results, TRAIN_IDS, assert_one_line_error, copy_tree, invoke, make_good_inputs,
                              make_pam_checkpoint, make_train_checkpoint, snapshot, work_copy)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    tree, inp = make_good_inputs(base)
    from bestie_labels.datasets import open_dataset

    (inp / "preds.json").write_text(json.dumps(gt_results(open_dataset(tree, "val"))))
    return base


@pytest.fixture
def work(good, tmp_path):
    return work_copy(good, tmp_path)


def _ckpt(work: Path) -> Path:
    names = (work / "voc" / "class_names.txt").read_text().split()
    return make_train_checkpoint(work / "in" / "model.pt", names)


def _pam_ckpt(work: Path) -> Path:
    names = (work / "voc" / "class_names.txt").read_text().split()
    return make_pam_checkpoint(work / "in" / "pam.pt", names)


# (name, group, argv builder(work, out)) of every command that writes one JSON file
def _json_commands():
    def d(w, split="train"):
        return ["--data", w / "voc", "--split", split]

    return {
        "evaluate": ("labels", lambda w, o: ["evaluate", *d(w, "val"), "--predictions", w / "in" / "preds.json", "--out", o]),
        "report": ("labels", lambda w, o: ["report", *d(w), "--pseudo", w / "in" / "pseudo.h5", "--out", o]),
        "export coco": ("labels", lambda w, o: ["export", *d(w), "--pseudo", w / "in" / "pseudo.h5", "--out", o]),
        "bestie-train predict": ("train", lambda w, o: ["predict", "--checkpoint", _ckpt(w), *d(w, "val"), "--out", o]),
        "bestie-train evaluate": ("train", lambda w, o: ["evaluate", "--checkpoint", _ckpt(w), *d(w, "val"), "--out", o]),
    }


JSON_COMMANDS = list(_json_commands())


@pytest.mark.parametrize("name", JSON_COMMANDS)
def test_json_output_of_another_program_is_refused(name, work):
    group, argv = _json_commands()[name]
    out = work / "out" / "result.json"
    out.write_text('{"mine": true}\n')
    args = argv(work, out)
    before = snapshot(work)
    r = invoke(group, args)
    assert_one_line_error(r, "result.json", r"exists and was not written by `bestie-(labels|train) \S+`.*--force")
    assert snapshot(work) == before
    # the same command replaces its own output; --force replaces the foreign one
    r = invoke(group, [*argv(work, out), "--force"])
    assert r.exit_code == 0, r.output
    first = out.read_bytes()
    assert first != b'{"mine": true}\n'
    r = invoke(group, argv(work, out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == first


@pytest.mark.parametrize("name", JSON_COMMANDS)
def test_json_output_of_another_command_is_refused(name, work):
    """A JSON written by another bestie command is not this command's own."""
    other = "report" if name != "report" else "evaluate"
    g2, a2 = _json_commands()[other]
    out = work / "out" / "x.json"
    assert invoke(g2, a2(work, out)).exit_code == 0
    group, argv = _json_commands()[name]
    args = argv(work, out)
    before = snapshot(work)
    r = invoke(group, args)
    assert_one_line_error(r, "x.json", r"not written by")
    assert snapshot(work) == before


def _input_cases(w: Path):
    """(case, group, argv, the name the error line holds) for outputs that are inputs."""
    i, v = w / "in", w / "voc"
    d = ["--data", v, "--split", "train"]
    dv = ["--data", v, "--split", "val"]
    ck = i / "model.pt"
    first = f"{TRAIN_IDS[0]}"
    return [
        ("evaluate --out predictions", "labels",
         ["evaluate", *dv, "--predictions", i / "preds.json", "--out", i / "preds.json"], "preds.json"),
        ("evaluate --out class_names.txt", "labels",
         ["evaluate", *dv, "--predictions", i / "preds.json", "--out", v / "class_names.txt"], "class_names.txt"),
        ("report --out pseudo store", "labels",
         ["report", *d, "--pseudo", i / "pseudo.h5", "--out", i / "pseudo.h5"], "pseudo.h5"),
        ("report --overlays JPEGImages", "labels",
         ["report", *d, "--pseudo", i / "pseudo.h5", "--overlays", v / "JPEGImages"], "JPEGImages"),
        ("export coco --out pseudo store", "labels",
         ["export", *d, "--pseudo", i / "pseudo.h5", "--out", i / "pseudo.h5"], "pseudo.h5"),
        ("export voc --out dataset root", "labels",
         ["export", *d, "--pseudo", i / "pseudo.h5", "--format", "voc", "--out", v], f"{first}.png"),
        ("cues --export-txt over its --points", "labels",
         ["cues", *d, "--points", w / "official" / "Center_points", "--out", w / "out" / "c.h5",
          "--export-txt", w / "official"], f"{first}.txt"),
        ("cues --out a points file", "labels",
         ["cues", *d, "--points", v / "points", "--out", v / "points" / f"{first}.txt"], f"{first}.txt"),
        ("transfer --out its cues store", "labels",
         ["transfer", *d, "--cues", i / "cues.h5", "--wsss", i / "wsss.h5", "--out", i / "cues.h5"], "cues.h5"),
        ("wsss --out a dataset image", "labels",
         ["wsss", *d, "--from-gt", "--out", v / "JPEGImages" / f"{first}.jpg"], f"{first}.jpg"),
        ("merge --out a part", "labels", ["merge", i / "cues.h5", "--out", i / "cues.h5"], "cues.h5"),
        ("bestie-train predict --out its checkpoint", "train",
         ["predict", "--checkpoint", ck, *dv, "--out", ck], "model.pt"),
        ("bestie-train evaluate --out its checkpoint", "train",
         ["evaluate", "--checkpoint", ck, *dv, "--out", ck], "model.pt"),
        ("fit --out its pseudo store", "train",
         ["fit", *d, "--pseudo", i / "pseudo.h5", "--wsss", i / "wsss.h5", "--iters", "1", "--out", i / "pseudo.h5"],
         "pseudo.h5"),
    ]


INPUT_CASES = [c[0] for c in _input_cases(Path("."))]


@pytest.mark.parametrize("case", INPUT_CASES)
def test_output_that_is_an_input_is_refused_even_with_force(case, work):
    if "bestie-train" in case:
        _ckpt(work)
    if "--export-txt" in case:
        copy_tree(work / "voc" / "points", work / "official" / "Center_points")
    _, group, argv, named = next(c for c in _input_cases(work) if c[0] == case)
    before = snapshot(work)
    r = invoke(group, [*argv, "--force"] if "fit" not in case else argv)
    assert_one_line_error(r, named, r"is also an input of this command|is inside an input folder")
    assert snapshot(work) == before


def _plant_foreign(folder: Path) -> dict:
    """A README and a file of another split in every export sub-folder."""
    planted = {}
    for sub in ("", "SegmentationObject", "SegmentationClass", "Center_points", "Peak_points"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for name in ("README", "2099_000001.png", "2099_000001.txt"):
            p = folder / sub / name
            p.write_text(f"user file {sub}/{name}")
            planted[p] = p.read_text()
    return planted


@pytest.mark.parametrize("fmt", ["voc", "bestie-txt", "cues --export-txt"])
def test_writing_into_a_folder_keeps_other_files(fmt, work):
    out = work / "out" / "tree"
    planted = _plant_foreign(out)
    d = ["--data", work / "voc", "--split", "train"]
    if fmt == "cues --export-txt":
        argv = ["cues", *d, "--out", work / "out" / "c.h5", "--export-txt", out]
        sub, ext = "Center_points", ".txt"
    else:
        argv = ["export", *d, "--pseudo", work / "in" / "pseudo.h5", "--format", fmt, "--out", out]
        sub, ext = ("SegmentationObject", ".png") if fmt == "voc" else ("Center_points", ".txt")
    for _ in range(2):  # the rerun replaces its own files without --force
        r = invoke("labels", argv)
        assert r.exit_code == 0, r.output
        for p, text in planted.items():
            assert p.read_text() == text, p
        assert sorted(p.name for p in (out / sub).iterdir() if p.name.startswith("2000_")) == \
            [f"{i}{ext}" for i in TRAIN_IDS]
    # a user file with the name of an output file is refused, and kept
    victim = out / sub / f"{TRAIN_IDS[1]}{ext}"
    victim.write_text("mine")
    before = snapshot(work)
    r = invoke("labels", argv)
    assert_one_line_error(r, victim.name, r"not written by")
    assert snapshot(work) == before
    assert invoke("labels", [*argv, "--force"]).exit_code == 0
    assert victim.read_bytes() != b"mine"


# ----------------------------------------------------------------------------------------
# concurrent runs
# ----------------------------------------------------------------------------------------
def _writers(w: Path):
    i, v = w / "in", w / "voc"
    d = ["--data", v, "--split", "train"]
    o = w / "out"
    return {
        "cues": ("labels", ["cues", *d, "--out", o / "cues.h5"], o / "cues.h5"),
        "wsss": ("labels", ["wsss", *d, "--from-gt", "--out", o / "wsss.h5"], o / "wsss.h5"),
        "transfer": ("labels", ["transfer", *d, "--cues", i / "cues.h5", "--wsss", i / "wsss.h5", "--out", o / "p.h5"],
                     o / "p.h5"),
        "merge": ("labels", ["merge", i / "cues.h5", "--out", o / "m.h5"], o / "m.h5"),
        "export": ("labels", ["export", *d, "--pseudo", i / "pseudo.h5", "--out", o / "c.json"], o / "c.json"),
        "report": ("labels", ["report", *d, "--pseudo", i / "pseudo.h5", "--out", o / "r.json"], o / "r.json"),
        "evaluate": ("labels", ["evaluate", "--data", v, "--split", "val", "--predictions", i / "preds.json",
                                "--out", o / "m.json"], o / "m.json"),
        "demo-data": ("labels", ["demo-data", o / "demo", "--images", "2", "--size", "32"], o / "demo"),
        "train-pam": ("labels", ["train-pam", *d, "--backbone", "tiny", "--epochs", "1", "--val-split", "none",
                                 "--out", o / "pam.pt"], o / "pam.pt"),
        "train-irn": ("labels", ["train-irn", *d, "--checkpoint", i / "pam.pt", "--epochs", "1",
                                 "--out", o / "irn.pt"], o / "irn.pt"),
        "fit": ("train", ["fit", *d, "--pseudo", i / "pseudo.h5", "--wsss", i / "wsss.h5", "--iters", "1",
                          "--batch-size", "2", "--crop", "32", "--val-split", "none", "--out", o / "run"], o / "run"),
        "bestie-train predict": ("train", ["predict", "--checkpoint", i / "model.pt", "--data", v,
                                           "--out", o / "p.json"], o / "p.json"),
        "bestie-train evaluate": ("train", ["evaluate", "--checkpoint", i / "model.pt", "--data", v,
                                            "--out", o / "e.json"], o / "e.json"),
        "summary": ("labels", ["summary", "--work", o, "--quiet"], o / "summary.json"),
        "pipeline": ("labels", ["pipeline", "--work", o / "work"], o / "work"),
    }


WRITERS = list(_writers(Path(".")))

_HOLDER = textwrap.dedent("""
    import sys, time
    from bestie_labels.core.outputs import OutputLock
    lk = OutputLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.mark.parametrize("name", WRITERS)
def test_second_concurrent_run_is_refused(name, work):
    if name.startswith("bestie-train") or name in ("fit", "train-pam"):
        _ckpt(work)
    if name == "train-irn":
        _pam_ckpt(work)
    group, argv, out = _writers(work)[name]
    if name == "summary":
        (work / "out" / "report.json").write_text('{"total": {}}')
        (work / "out" / "metrics.json").write_text('{"voc": {}, "coco": {}}')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, os.fspath(out)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(work)
        r = invoke(group, argv)
        assert_one_line_error(r, out.name, rf"another run \(pid {holder.pid}\) is writing this output")
        assert snapshot(work) == before
    finally:
        holder.kill()
        holder.wait()
    if name == "pipeline":
        return  # the takeover would run the whole pipeline
    # the holder is dead: its lock file is left behind, and the next run takes it over
    from bestie_labels.core.outputs import lock_path

    assert lock_path(out).exists()
    r = invoke(group, argv)
    assert r.exit_code == 0, r.output
    assert not lock_path(out).exists()


def test_rows_cover_every_writing_command():
    """The concurrent-run rows name every command of both groups."""
    import click

    from bestie_cli.labels import main as labels
    from bestie_cli.train import main as train

    names = {f"labels {c}" for c in labels.list_commands(click.Context(labels))} | \
            {f"train {c}" for c in train.list_commands(click.Context(train))}
    covered = {("train " + n.split()[1]) if n.startswith("bestie-train") else
               ("train fit" if n == "fit" else f"labels {n}") for n in WRITERS}
    assert names == covered, sorted(names ^ covered)
