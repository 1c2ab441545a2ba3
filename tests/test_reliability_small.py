"""Files the tools did not write, read by the real commands (issue 23, case 7 and new cases).

* a TorchScript archive given as a checkpoint: one line, no torch warning, no word cut;
* ``train-pam`` / ``train-irn --out`` naming a text file: "not a checkpoint", not "exists";
* JSON files with a UTF-8 byte-order mark (Windows editors) are read; JSON nested too deeply is
  refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from badinput_helpers import (TRAIN_IDS, assert_one_line_error, invoke, make_good_inputs, make_pam_checkpoint,
                              snapshot, work_copy)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    base = tmp_path_factory.mktemp("small")
    make_good_inputs(base)
    return base


@pytest.fixture
def work(good, tmp_path):
    return work_copy(good, tmp_path)


def _data(w: Path, split: str = "train") -> list:
    return ["--data", w / "voc", "--split", split]


def test_torchscript_checkpoint_is_one_clean_line(work):
    torch = pytest.importorskip("torch")
    ts = work / "in" / "model.ts.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(ts))
    before = snapshot(work)
    r = invoke("labels", ["cues", *_data(work), "--method", "pam", "--checkpoint", ts, "--out", work / "out" / "c.h5"])
    line = assert_one_line_error(r, "model.ts.pt", r"is a TorchScript archive \(torch.jit.save\)")
    assert "Warning" not in r.output and "TorchScript archive dispatching" not in r.output, r.output
    assert line.endswith("checkpoint)"), line  # the whole message, not cut
    assert snapshot(work) == before


def test_long_torch_message_is_cut_at_a_word():
    from bestie_labels.safe_load import _first_line

    text = "Cannot use weights_only with this kind of archive because " * 4
    cut = _first_line(RuntimeError(text))
    assert len(cut) <= 124 and cut.endswith(" ...")
    assert text.startswith(cut[:-4]) and text[len(cut) - 4] == " "  # the cut falls between words


@pytest.mark.parametrize("command", ["train-pam", "train-irn"])
def test_training_out_naming_a_text_file(command, work):
    pytest.importorskip("torch")
    notes = work / "out" / "notes.txt"
    notes.write_text("my notes\n")
    args = [command, *_data(work), "--out", notes]
    if command == "train-irn":
        names = (work / "voc" / "class_names.txt").read_text().split()
        args += ["--checkpoint", make_pam_checkpoint(work / "in" / "pam.pt", names)]
    before = snapshot(work)
    r = invoke("labels", args)
    assert_one_line_error(r, "notes.txt", r"exists and is not a checkpoint of this command \(.*\); pass --force")
    assert "checkpoint exists" not in r.output
    assert snapshot(work) == before


def test_json_with_a_byte_order_mark_is_read(work):
    """Predictions saved by a Windows editor (UTF-8 with BOM): evaluated as without it."""
    preds = work / "in" / "preds.json"
    from bestie_labels.datasets import open_dataset
    from bestie_labels.evaluation.coco_ap import encode_masks

    val = open_dataset(work / "voc", "val")
    rows = []
    for rec in val.records:
        gt = val.load_gt(rec)
        for rle, c in zip(encode_masks(gt.masks), gt.classes):
            rows.append({"image_id": rec.coco_id, "category_id": int(c) + 1, "score": 0.9,
                         "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    preds.write_text(json.dumps(rows), encoding="utf-8-sig")
    assert preds.read_bytes()[:3] == b"\xef\xbb\xbf"
    r = invoke("labels", ["evaluate", *_data(work, "val"), "--predictions", preds, "--out", work / "out" / "m.json"])
    assert r.exit_code == 0, r.output
    assert json.loads((work / "out" / "m.json").read_text())["voc"]["mAP50"] == pytest.approx(100.0)


def test_json_nested_too_deeply_is_one_line(work):
    preds = work / "in" / "preds.json"
    preds.write_text("[" * 200_000 + "]" * 200_000)
    before = snapshot(work)
    r = invoke("labels", ["evaluate", *_data(work, "val"), "--predictions", preds, "--out", work / "out" / "m.json"])
    assert_one_line_error(r, "preds.json", r"not valid JSON \(nested too deeply\)")
    assert snapshot(work) == before
