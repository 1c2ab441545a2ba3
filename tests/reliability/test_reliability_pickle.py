"""No code runs from a data file (issue 11, rule 4).

A crafted ``.pt`` whose unpickling runs ``touch MARKER`` goes through every command that reads a
checkpoint or pretrained weights. Each must refuse it in one line naming the file, and the marker
must not exist afterwards. ``test_payload_works`` shows the file does run the command when read
the unsafe way, so a loader that went back to ``weights_only=False`` would fail these tests.
"""

from __future__ import annotations

import pickle
import shutil

import pytest

from badinput_helpers import (assert_one_line_error, invoke, make_evil_checkpoint, make_good_inputs,
                              make_pam_checkpoint, make_train_checkpoint, snapshot)

import torch
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAM_KEYS = {"format": "bestie-pam", "version": 1, "options": {}, "class_names": ["a"]}
TRAIN_KEYS = {"format": 1, "kind": "bestie-train", "class_names": ["a"], "iteration": 1}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    base = tmp_path_factory.mktemp("pickle")
    make_good_inputs(base)
    return base


def _cases(voc, inp, evil, out):
    data = ["--data", voc, "--split", "train"]
    val = ["--data", voc, "--split", "val"]
    fit = ["fit", *data, "--pseudo", inp / "pseudo.h5", "--wsss", inp / "wsss.h5", "--iters", "1",
           "--batch-size", "2", "--crop", "32", "--val-split", "none"]
    return {
        "cues --method pam": ("labels", ["cues", *data, "--method", "pam", "--checkpoint", evil, "--out", out / "c.h5"]),
        "cues --method cam": ("labels", ["cues", *data, "--method", "cam", "--checkpoint", evil, "--out", out / "c.h5"]),
        "wsss --method cam": ("labels", ["wsss", *data, "--method", "cam", "--checkpoint", evil, "--out", out / "w.h5"]),
        "wsss --method irn": ("labels", ["wsss", *data, "--method", "irn", "--checkpoint", evil, "--out", out / "w.h5"]),
        "train-irn --checkpoint": ("labels", ["train-irn", *data, "--checkpoint", evil, "--epochs", "1",
                                              "--out", out / "irn.pt"]),
        "train-pam --resume": ("labels", ["train-pam", *data, "--backbone", "tiny", "--epochs", "1", "--val-split",
                                          "none", "--resume", "--out", evil]),
        "train-pam --pretrained": ("labels", ["train-pam", *data, "--backbone", "tiny", "--epochs", "1",
                                              "--val-split", "none", "--pretrained", evil, "--out", out / "pam.pt"]),
        "fit --pretrained": ("train", [*fit, "--pretrained", evil, "--out", out / "run"]),
        "fit --resume": ("train", [*fit, "--resume", "--out", evil.parent]),
        "bestie-train predict": ("train", ["predict", "--checkpoint", evil, *val, "--out", out / "p.json"]),
        "bestie-train evaluate": ("train", ["evaluate", "--checkpoint", evil, *val, "--out", out / "m.json"]),
    }


CASES = ["cues --method pam", "cues --method cam", "wsss --method cam", "wsss --method irn", "train-irn --checkpoint",
         "train-pam --resume",
         "train-pam --pretrained", "fit --pretrained", "fit --resume", "bestie-train predict",
         "bestie-train evaluate"]


def test_payload_works(tmp_path):
    """The crafted file does run its command when unpickled the unsafe way."""
    marker = tmp_path / "ran"
    p = make_evil_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(p, map_location="cpu", weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(p, map_location="cpu", weights_only=True)
    assert not marker.exists()


@pytest.mark.parametrize("case", CASES)
def test_crafted_checkpoint_runs_nothing(case, good, tmp_path):
    voc = shutil.copytree(good / "voc", tmp_path / "voc")
    inp = shutil.copytree(good / "in", tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "ran"
    (tmp_path / "ck").mkdir()
    name = "last.pt" if case == "fit --resume" else "evil.pt"
    disguise = TRAIN_KEYS if "train" in case or "fit" in case else PAM_KEYS
    evil = make_evil_checkpoint(tmp_path / "ck" / name, marker, disguise)
    group, args = _cases(voc, inp, evil, out)[case]
    before = snapshot(tmp_path)
    r = invoke(group, args)
    assert not marker.exists(), f"{case}: loading the checkpoint ran its code"
    assert_one_line_error(r, name, r"refused: this (checkpoint|weights file) holds Python objects")
    assert snapshot(tmp_path) == before


def test_own_checkpoints_load_weights_only(tmp_path):
    """What train-pam and fit write is read back with weights_only=True (rng states included)."""
    from bestie_labels.classifier.checkpoint import FORMAT, load_checkpoint, rng_state, save_checkpoint, set_rng_state
    import numpy as np
    import random

    np.random.seed(3)
    random.seed(4)
    save_checkpoint(tmp_path / "pam.pt", {"format": FORMAT, "version": 1, "model": {}, "options": {},
                                         "class_names": ["a"], "rng": rng_state()})
    a, b = np.random.rand(), random.random()
    ck = load_checkpoint(tmp_path / "pam.pt")
    set_rng_state(ck["rng"])
    assert (np.random.rand(), random.random()) == (a, b)
    make_pam_checkpoint(tmp_path / "p2.pt", ["a", "b"])
    make_train_checkpoint(tmp_path / "m.pt", ["a", "b"])
    for p in ("p2.pt", "m.pt"):
        torch.load(tmp_path / p, map_location="cpu", weights_only=True)
