"""Files a command did not write are never replaced without --force (issue 23, cases 1-3).

* ``bestie-train fit --out`` on a folder holding another program's ``metrics.jsonl``,
  ``curves.png`` or ``best.pt`` (but no ``last.pt``): refused, the files unchanged;
* the pipeline's JSON / figure stages run without ``--force``: a user's ``report.json`` or
  ``pseudo_coco.json`` in the work folder is refused, the pipeline's own is replaced;
* a registry entry left ``pending`` by a killed run does not make a file put there later the
  command's own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from badinput_helpers import assert_one_line_error, invoke, make_pam_checkpoint, snapshot

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _fit(w: Path, out: Path, *extra) -> list:
    return ["fit", "--data", w / "voc", "--split", "train", "--pseudo", w / "in" / "pseudo.h5", "--wsss",
            w / "in" / "wsss.h5", "--iters", "1", "--batch-size", "2", "--crop", "32", "--val-split", "none",
            "--threads", "1", "--out", out, *extra]


@pytest.mark.parametrize("name", ["metrics.jsonl", "curves.png", "best.pt"])
def test_fit_refuses_run_files_it_did_not_write(name, work):
    run = work / "out" / "run"
    run.mkdir()
    if name == "best.pt":  # another command's checkpoint
        names = (work / "voc" / "class_names.txt").read_text().split()
        make_pam_checkpoint(run / name, names)
    else:
        (run / name).write_text("{\"mine\": 1}\n" if name.endswith("jsonl") else "not a figure")
    before = snapshot(work)
    r = invoke("train", _fit(work, run))
    assert_one_line_error(r, name, r"exists and was not written by `bestie-train fit`.*--force")
    assert snapshot(work) == before
    # --resume --force (what the pipeline passes) starts over a mismatching run, not a foreign file
    assert_one_line_error(invoke("train", _fit(work, run, "--resume", "--force")), name, r"not written by")
    assert snapshot(work) == before
    r = invoke("train", _fit(work, run, "--force"))
    assert r.exit_code == 0, r.output
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()


def test_fit_rerun_after_a_kill_before_its_first_checkpoint(work):
    """A metrics.jsonl of fit rows without last.pt (a run killed early) is fit's own."""
    run = work / "out" / "run"
    assert invoke("train", _fit(work, run)).exit_code == 0
    for p in run.iterdir():
        if p.name != "metrics.jsonl":
            p.unlink()
    r = invoke("train", _fit(work, run))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["iter"]) for r in rows] == [("train", 1)] and (run / "last.pt").is_file()


def _pipeline_stages(w: Path) -> dict:
    from bestie_labels.pipeline.plan import PipelineConfig, build_stages

    cfg = PipelineConfig(voc_root=str(w / "voc"), work=str(w / "out"), sup="point")
    return {s.name: s for s in build_stages(cfg)}


def test_pipeline_json_stages_do_not_force(work):
    stages = _pipeline_stages(work)
    for name in ("report", "export", "evaluate", "evaluate-last", "summary"):
        assert "--force" not in stages[name].argv, name


@pytest.mark.parametrize("stage,user_file", [("report", "report.json"), ("report", "overlays/2000_000001.png"),
                                             ("export", "pseudo_coco.json")])
def test_pipeline_stage_keeps_a_users_file(stage, user_file, work):
    """The stage's own command line (as the pipeline runs it) in a work folder holding a file a
    user put there: refused, nothing changed; a second run replaces only its own output."""
    for s in ("pseudo.h5", "wsss.h5"):
        shutil.copy(work / "in" / s, work / "out" / s)
    argv = _pipeline_stages(work)[stage].argv[1:]
    own = invoke("labels", argv)  # first run into an empty work folder
    assert own.exit_code == 0, own.output
    assert invoke("labels", argv).exit_code == 0  # its own output: replaced without --force
    user = work / "out" / user_file
    user.write_bytes(b"a user's file")
    before = snapshot(work)
    r = invoke("labels", argv)
    assert_one_line_error(r, Path(user_file).name, r"exists and was not written by")
    assert snapshot(work) == before


@pytest.mark.parametrize("user_file", ["metrics.json", "predictions/2000_000004.png", "summary.json"])
def test_pipeline_evaluate_and_summary_keep_a_users_file(user_file, work):
    """The evaluate stage (bestie-train evaluate --vis) and the summary stage, as the pipeline
    runs them: a user's metrics.json, a PNG in predictions/ or summary.json is refused."""
    from badinput_helpers import make_train_checkpoint

    (work / "out" / "run").mkdir()
    names = (work / "voc" / "class_names.txt").read_text().split()
    make_train_checkpoint(work / "out" / "run" / "best.pt", names)
    stages = _pipeline_stages(work)
    stage = "summary" if user_file == "summary.json" else "evaluate"
    group = "labels" if stage == "summary" else "train"
    user = work / "out" / user_file
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_bytes(b"a user's file")
    before = snapshot(work)
    r = invoke(group, stages[stage].argv[1:])
    assert_one_line_error(r, Path(user_file).name, r"exists and was not written by")
    assert snapshot(work) == before


def test_pending_entry_does_not_own_a_later_file(work):
    """A run killed while writing report.json leaves its entry pending; a file the user puts
    there afterwards is foreign (refused without --force), the command's last own bytes are not."""
    out = work / "out" / "report.json"
    argv = ["report", "--data", work / "voc", "--split", "train", "--pseudo", work / "in" / "pseudo.h5", "--out", out]
    assert invoke("labels", argv).exit_code == 0
    reg_path = out.parent / ".bestie-outputs.json"
    reg = json.loads(reg_path.read_text())
    reg["report.json"]["pending"] = True  # what a SIGKILL between mark and settle leaves
    reg_path.write_text(json.dumps(reg))
    assert invoke("labels", argv).exit_code == 0  # its own bytes: still its own
    reg = json.loads(reg_path.read_text())
    reg["report.json"]["pending"] = True
    reg_path.write_text(json.dumps(reg))
    out.write_text('{"mine": true}')
    before = snapshot(work)
    r = invoke("labels", argv)
    assert_one_line_error(r, "report.json", r"exists and was not written by `bestie-labels report`")
    assert snapshot(work) == before


def test_ctrl_c_records_what_the_run_wrote(work, monkeypatch):
    """Ctrl-C after the output is written: the entry is settled (not left pending), so a rerun
    recognises the file by its bytes."""
    from bestie_labels.core.outputs import guard_outputs, written_by

    out = work / "out" / "a.json"
    with pytest.raises(KeyboardInterrupt):
        with guard_outputs("bestie-labels report", outputs=[out], files=[out]):
            out.write_text("{}")
            raise KeyboardInterrupt
    reg = json.loads((out.parent / ".bestie-outputs.json").read_text())
    assert "pending" not in reg["a.json"]
    assert written_by(out, "bestie-labels report")


@pytest.mark.parametrize("stage,store", [("cues", "cues.h5"), ("transfer", "pseudo.h5")])
def test_pipeline_store_stage_replaces_only_its_own_store(stage, store, work):
    """The store stages run with --replace-own, not --force: their own store made with other
    options is replaced, a user's file or another command's store at that path is refused."""
    for s in ("cues.h5", "wsss.h5"):
        if stage == "transfer":
            shutil.copy(work / "in" / s, work / "out" / s)
    argv = _pipeline_stages(work)[stage].argv[1:]
    assert "--force" not in argv and "--replace-own" in argv
    other = argv + (["--min-conf", "0.5"] if stage == "cues" else ["--min-area", "3"])
    assert invoke("labels", other).exit_code == 0  # its own store, made with other options
    r = invoke("labels", argv)
    assert r.exit_code == 0, r.output  # replaced without --force
    out = work / "out" / store
    for foreign, problem in ((b"a user's file", r"exists and is not a store of this stage"),
                             ((work / "in" / "wsss.h5").read_bytes(), r"it is a 'wsss' store, not a")):
        out.unlink()
        out.write_bytes(foreign)
        before = snapshot(work)
        r = invoke("labels", argv)
        assert_one_line_error(r, store, problem)
        assert snapshot(work) == before
