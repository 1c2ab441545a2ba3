"""No traceback (issue 11, rule 3): empty shards, many instances, --device cuda without CUDA,
checkpoint mix-ups. Each row runs the real command in-process."""

from __future__ import annotations

import filecmp
import json

import numpy as np
import pytest

from badinput_helpers import (TRAIN_IDS, assert_one_line_error, invoke, make_pam_checkpoint,
                              make_train_checkpoint, snapshot)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- empty shards -------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["cues", "wsss", "transfer"])
def test_empty_shard_writes_a_part_that_merge_accepts(stage, work):
    """--shard I/N with I beyond the image count (a large Slurm array): an empty part; merging
    every part gives the unsharded store, byte for byte."""
    d = ["--data", work / "voc", "--split", "train"]
    extra = {"cues": [], "wsss": ["--from-gt"],
             "transfer": ["--cues", work / "in" / "cues.h5", "--wsss", work / "in" / "wsss.h5", "--min-area", "4"]}[stage]
    n = len(TRAIN_IDS) + 2
    parts = []
    for i in range(n):
        out = work / "out" / f"part{i}.h5"
        r = invoke("labels", [stage, *d, *extra, "--shard", f"{i}/{n}", "--out", out])
        assert r.exit_code == 0, r.output
        parts.append(out)
    r = invoke("labels", [stage, *d, *extra, "--shard", f"{n - 1}/{n}", "--out", parts[-1]])
    assert r.exit_code == 0 and "up to date (0 images)" in r.output, r.output
    from bestie_labels.store.file import Store

    with Store(parts[-1]) as s:
        assert len(s) == 0 and len(s.split_ids) == len(TRAIN_IDS)
    assert invoke("labels", ["merge", *parts, "--out", work / "out" / "merged.h5"]).exit_code == 0
    assert invoke("labels", [stage, *d, *extra, "--out", work / "out" / "whole.h5"]).exit_code == 0
    assert filecmp.cmp(work / "out" / "merged.h5", work / "out" / "whole.h5", shallow=False)


# --- many instances -------------------------------------------------------------------------
def test_export_coco_with_300_instances_in_one_image(work):
    """pycocotools' area() overflows with 256 or more RLEs under numpy 2: areas come from the masks."""
    from pycocotools.coco import COCO

    from bestie_labels.datasets import open_dataset
    from bestie_labels.store.file import StoreWriter

    ds = open_dataset(work / "voc", "train")
    n = 300
    h, w = ds.records[0].height, ds.records[0].width
    inst = np.zeros((h, w), np.uint16)
    inst.ravel()[:n] = np.arange(1, n + 1)  # instance k is one pixel; k = 1 is pixel (0, 0)
    inst.ravel()[n:n + 5] = 1               # instance 1 gets 5 more pixels
    writer = StoreWriter(work / "in" / "many.h5", "pseudo", {"from_gt": False}, {"data": ds.fingerprint()},
                         ds.image_ids)
    for rec in ds.records:
        k = n if rec is ds.records[0] else 0
        writer.add(rec.image_id, {"instances": inst if k else np.zeros((h, w), np.uint16),
                                  "classes": np.zeros(k, np.int32), "centers": np.zeros((k, 2), np.float32),
                                  "scores": np.ones(k, np.float32)})
    writer.finish()
    out = work / "out" / "coco.json"
    r = invoke("labels", ["export", "--data", work / "voc", "--split", "train", "--pseudo", work / "in" / "many.h5",
                          "--out", out])
    assert r.exit_code == 0, r.output
    anns = json.loads(out.read_text())["annotations"]
    assert len(anns) == n
    assert anns[0]["area"] == 6 and {a["area"] for a in anns[1:]} == {1}
    coco = COCO(out)
    assert len(coco.getAnnIds(imgIds=[anns[0]["image_id"]])) == n


# --- --device cuda without CUDA ----------------------------------------------------------
@pytest.mark.parametrize("cmd", ["cues --method pam", "cues --method cam", "wsss --method cam"])
def test_device_cuda_without_cuda(cmd, work):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    names = (work / "voc" / "class_names.txt").read_text().split()
    ck = make_pam_checkpoint(work / "in" / "pam.pt", names)
    stage, _, method = cmd.split()
    before = snapshot(work)
    r = invoke("labels", [stage, "--data", work / "voc", "--method", method, "--checkpoint", ck, "--device", "cuda",
                          "--out", work / "out" / f"{stage}.h5"])
    line = assert_one_line_error(r, "", r"--device cuda but CUDA is not available")
    assert line.startswith("Error: --device cuda")
    assert snapshot(work) == before


# --- checkpoint mix-ups ----------------------------------------------------------------------
def _mixups(w):
    d = ["--data", w / "voc", "--split", "train"]
    ck = w / "ck"
    fit = ["fit", *d, "--pseudo", w / "in" / "pseudo.h5", "--wsss", w / "in" / "wsss.h5", "--iters", "1",
           "--batch-size", "2", "--crop", "32", "--val-split", "none"]
    pam_kind, train_kind = r"train-pam", r"bestie-train fit"
    not_train, not_pam = "not a bestie-train checkpoint", "not a bestie PAM classifier checkpoint"
    not_weights = "not pretrained backbone weights"
    return {
        "PAM checkpoint to bestie-train predict": ("train", ["predict", "--checkpoint", ck / "pam.pt", *d, "--out",
                                                             w / "out" / "p.json"], "pam.pt", pam_kind, not_train),
        "PAM checkpoint to bestie-train evaluate": ("train", ["evaluate", "--checkpoint", ck / "pam.pt", "--data",
                                                              w / "voc"], "pam.pt", pam_kind, not_train),
        "PAM checkpoint as fit --resume last.pt": ("train", [*fit, "--resume", "--out", ck / "run"], "last.pt",
                                                   pam_kind, not_train),
        "bestie-train checkpoint to cues --method pam": ("labels", ["cues", *d, "--method", "pam", "--checkpoint",
                                                                    ck / "model.pt", "--out", w / "out" / "c.h5"],
                                                         "model.pt", train_kind, not_pam),
        "bestie-train checkpoint to wsss --method cam": ("labels", ["wsss", *d, "--method", "cam", "--checkpoint",
                                                                    ck / "model.pt", "--out", w / "out" / "w.h5"],
                                                         "model.pt", train_kind, not_pam),
        "bestie-train checkpoint as train-pam --resume": ("labels", ["train-pam", *d, "--backbone", "tiny", "--epochs", "1",
                                                                     "--val-split", "none", "--resume", "--out",
                                                                     ck / "model.pt"], "model.pt", train_kind, not_pam),
        "weights to bestie-train predict": ("train", ["predict", "--checkpoint", ck / "weights.pt", *d, "--out",
                                                      w / "out" / "p.json"], "weights.pt", "plain state dict", not_train),
        "weights to cues --method pam": ("labels", ["cues", *d, "--method", "pam", "--checkpoint", ck / "weights.pt",
                                                    "--out", w / "out" / "c.h5"], "weights.pt", "plain state dict", not_pam),
        "PAM checkpoint as fit --pretrained": ("train", [*fit, "--pretrained", ck / "pam.pt", "--out", w / "out" / "run"],
                                               "pam.pt", pam_kind, not_weights),
        "bestie-train checkpoint as train-pam --pretrained": ("labels", ["train-pam", *d, "--backbone", "tiny", "--epochs",
                                                                         "1", "--val-split", "none", "--pretrained",
                                                                         ck / "model.pt", "--out", w / "out" / "pam.pt"],
                                                              "model.pt", train_kind, not_weights),
    }


@pytest.mark.parametrize("case", list(_mixups(__import__("pathlib").Path("."))))
def test_checkpoint_mixup_is_named(case, work):
    import torch
    names = (work / "voc" / "class_names.txt").read_text().split()
    ck = work / "ck"
    (ck / "run").mkdir(parents=True)
    make_pam_checkpoint(ck / "pam.pt", names)
    make_pam_checkpoint(ck / "run" / "last.pt", names)
    make_train_checkpoint(ck / "model.pt", names)
    torch.save({"conv.weight": torch.zeros(2, 3)}, ck / "weights.pt")
    group, args, name, kind, expected = _mixups(work)[case]
    before = snapshot(work)
    r = invoke(group, args)
    line = assert_one_line_error(r, name, expected)
    assert kind in line and "weights_only" not in line and "trust" not in line, line
    assert snapshot(work) == before
