"""The label-stage commands on the tiny demo data: chain, one-line errors, shards, exports."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bestie_cli.labels import main


def _run(*args, code=0):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def chain(demo_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data = ["--data", demo_root, "--split", "train"]
    _run("cues", *data, "--out", d / "cues.h5")
    _run("wsss", *data, "--from-gt", "--out", d / "wsss.h5")
    r = _run("transfer", *data, "--cues", d / "cues.h5", "--wsss", d / "wsss.h5", "--out", d / "pseudo.h5")
    assert "transfer: wrote" in r.output and "9 images" in r.output
    return data, d


def test_chain_report_export(chain):
    data, d = chain
    r = _run("transfer", *data, "--cues", d / "cues.h5", "--wsss", d / "wsss.h5", "--out", d / "pseudo.h5")
    assert "is up to date" in r.output
    r = _run("report", *data, "--pseudo", d / "pseudo.h5", "--out", d / "report.json",
             "--overlays", d / "ov", "--num-overlays", "2")
    rep = json.loads((d / "report.json").read_text())
    assert rep["num_images"] == 9 and rep["total"]["tp"] > 0
    assert f"{rep['total']['num_pseudo']:>7} {rep['total']['tp']:>7}" in r.output
    assert len(list((d / "ov").glob("*.png"))) == 2
    # Every GT instance has a fate; GT points and GT class masks lose none to a cue or the WSSS.
    lost = rep["lost"]
    assert sum(lost["total"].values()) == rep["total"]["num_gt"] and lost["total"]["kept"] == rep["total"]["tp"]
    assert lost["total"]["no_cue"] == 0 and lost["total"]["wsss_missed"] == 0
    n = rep["total"]["num_gt"]  # one GT point per instance: every cue inside its own instance
    assert rep["cues"] == {"num_cues": n, "tp": n, "precision": 100.0, "recall": 100.0}
    for name, row in rep["classes"].items():
        assert sum(lost["per_class"][name].values()) == row["num_gt"] and lost["per_class"][name]["kept"] == row["tp"]
    assert f"kept {lost['total']['kept']} of {rep['total']['num_gt']} GT" in r.output
    _run("export", *data, "--pseudo", d / "pseudo.h5", "--format", "coco", "--out", d / "coco.json")
    js = json.loads((d / "coco.json").read_text())
    assert len(js["images"]) == 9 and len(js["annotations"]) == rep["total"]["num_pseudo"]
    _run("export", *data, "--pseudo", d / "pseudo.h5", "--format", "voc", "--out", d / "voc")
    assert len(list((d / "voc" / "SegmentationObject").glob("*.png"))) == 9
    _run("export", *data, "--pseudo", d / "pseudo.h5", "--format", "bestie-txt", "--out", d / "txt")
    lines = sum(len(p.read_text().splitlines()) for p in (d / "txt" / "Center_points").glob("*.txt"))
    assert lines == rep["total"]["num_pseudo"]


def test_shards_merge_equal_unsharded(chain):
    data, d = chain
    parts = []
    for i in range(2):
        p = d / f"part{i}.h5"
        _run("transfer", *data, "--cues", d / "cues.h5", "--wsss", d / "wsss.h5", "--out", p, "--shard", f"{i}/2")
        parts.append(p)
    _run("merge", *parts, "--out", d / "merged.h5")
    assert filecmp.cmp(d / "merged.h5", d / "pseudo.h5", shallow=False)
    r = _run("merge", parts[0], "--out", d / "m2.h5", code=1)
    assert "images of the split are in no part" in r.output


def test_wrong_store_one_line(chain):
    data, d = chain
    r = _run("transfer", *data, "--cues", d / "wsss.h5", "--wsss", d / "wsss.h5", "--out", d / "bad.h5", code=1)
    msg = r.output.strip()
    assert msg == f"Error: {d / 'wsss.h5'}: this is a 'wsss' store, expected a 'cues' store"
    assert not (d / "bad.h5").exists() and not (d / "bad.h5.parts").exists()
    r = _run("transfer", *data, "--cues", d / "cues.h5", "--wsss", d / "wsss.h5", "--out", d / "pseudo.h5",
             "--min-area", "10", code=1)
    assert "min_area: 50 -> 10" in r.output and "--force" in r.output and len(r.output.strip().splitlines()) == 1
    r = _run("wsss", *data, "--out", d / "w.h5", code=1)
    assert "exactly one of --import DIR, --checkpoint (with --method irn or cam), --from-gt" in r.output


def test_label_commands_do_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; from bestie_cli.labels import main\n"
            "for c in ['cues', 'wsss', 'transfer', 'report', 'export', 'merge']:\n"
            "    r = CliRunner().invoke(main, [c, '--help']); assert r.exit_code == 0, r.output\n"
            "import bestie_labels.stages, bestie_labels.formats.coco_json\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_installed_commands_run_outside_the_checkout(tmp_path):
    """Every command of both entry points loads from the installed package ``bestie_cli``, from a
    folder where the checkout's ``cli/`` is not importable (a command module named by its folder
    would be found only inside the checkout)."""
    code = ("import sys; from click.testing import CliRunner\n"
            "from bestie_cli.labels import main as labels; from bestie_cli.train import main as train\n"
            "n = 0\n"
            "for main in (labels, train):\n"
            "    for c in main.list_commands(None):\n"
            "        r = CliRunner().invoke(main, [c, '--help']); assert r.exit_code == 0, (c, r.output); n += 1\n"
            "assert 'cli' not in sys.modules\n"
            "print(n)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cli = Path(__file__).parents[2] / "cli"
    assert int(r.stdout) == len([*cli.glob("labels_*.py"), *cli.glob("train_*.py")])


def test_sigint_transfer_then_rerun_is_identical(chain, tmp_path):
    """kill -INT half way: exit 130, finished images kept in parts, rerun gives the same bytes."""
    import os
    import signal
    import time

    data, d = chain
    out = tmp_path / "p.h5"
    marks = tmp_path / "marks"
    marks.mkdir()
    # The transfer command, slowed down to ~0.2 s per image, leaving a mark after each image.
    code = (
        "import sys, time, pathlib\n"
        "import bestie_labels.stages.transfer as S\n"
        "real = S.transfer_instances\n"
        "def slow(*a, **k):\n"
        "    r = real(*a, **k)\n"
        "    n = len(list(pathlib.Path(sys.argv[1]).iterdir()))\n"
        "    (pathlib.Path(sys.argv[1]) / str(n)).touch()\n"
        "    time.sleep(0.2)\n"
        "    return r\n"
        "S.transfer_instances = slow\n"
        "from bestie_cli.labels import main\n"
        "main(sys.argv[2:])\n")
    args = ["transfer", *map(str, data), "--cues", str(d / "cues.h5"), "--wsss", str(d / "wsss.h5"), "--out", str(out)]
    p = subprocess.Popen([sys.executable, "-c", code, str(marks), *args], stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while len(list(marks.iterdir())) < 4 and time.time() - t0 < 60:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "rerun the same command to resume" in err
    assert not out.exists() and (tmp_path / "p.h5.parts").is_dir()
    r = _run(*args)
    computed = int(r.output.split(" computed now")[0].split(", ")[-1])
    assert 0 < computed <= 9 - 3  # at least the 3 images before the one in flight were kept
    assert filecmp.cmp(out, d / "pseudo.h5", shallow=False)


def test_report_fates_need_the_stores_the_pseudo_store_was_made_from(chain, tmp_path):
    data, d = chain
    alone = tmp_path / "pseudo.h5"
    alone.write_bytes((d / "pseudo.h5").read_bytes())  # no cues / WSSS store next to it
    r = _run("report", *data, "--pseudo", alone, "--out", tmp_path / "a.json")
    assert "lost:" not in r.output and "lost" not in json.loads((tmp_path / "a.json").read_text())
    r = _run("report", *data, "--pseudo", alone, "--cues", d / "cues.h5", "--wsss", d / "wsss.h5",
             "--out", tmp_path / "b.json")
    rep = json.loads((tmp_path / "b.json").read_text())
    assert "lost:" in r.output and sum(rep["lost"]["total"].values()) == rep["total"]["num_gt"]
    # a cues store the pseudo store was not made from (other options) gives no fates
    _run("cues", *data, "--min-conf", "0.5", "--out", tmp_path / "other_cues.h5")
    r = _run("report", *data, "--pseudo", alone, "--cues", tmp_path / "other_cues.h5", "--wsss", d / "wsss.h5")
    assert "lost:" not in r.output
