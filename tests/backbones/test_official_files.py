"""The official release files load as they are: PAM.pth, BESTIE_HRNet48_*.pt, hrnet_wW-*.pth.

State dicts are written in each official layout (keys and shapes from the official code, see
``official_layouts.py``; random values) and loaded through the public API and through every
command that takes them, with no missing or unexpected key.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import bestie_labels
import bestie_train
from badinput_helpers import NUM_CLASSES, assert_one_line_error, invoke, make_tiny_tree
from bestie_labels.core.constants import VOID
from bestie_labels.core.errors import BestieError
from bestie_labels.datasets import open_dataset
from bestie_labels.store.checks import read_cues, read_wsss
from bestie_labels.store.file import Store
from official_layouts import bestie_hrnet_state, hrnet_imagenet_state, pam_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Official-layout files: PAM.pth for 20 and 4 classes, BESTIE HRNet-W48 (20 classes) and
    HRNet-W32 (4 classes, for the commands on the demo tree), HRNet-W32 ImageNet weights."""
    d = tmp_path_factory.mktemp("official")
    out = {"pam20": d / "PAM.pth", "pam4": d / "PAM4.pth", "w48": d / "BESTIE_HRNet48_image_label.pt",
           "w32": d / "BESTIE_HRNet32_4cls.pt", "imagenet32": d / "hrnet_w32-36af842e.pth"}
    torch.save(pam_file(20), out["pam20"])
    torch.save(pam_file(NUM_CLASSES, seed=1), out["pam4"])
    torch.save({"model": bestie_hrnet_state(48, 20)}, out["w48"])
    torch.save({"model": bestie_hrnet_state(32, NUM_CLASSES, seed=2)}, out["w32"])
    torch.save(hrnet_imagenet_state(32, seed=4), out["imagenet32"])
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The tiny demo tree (4 images of 32 px, 4 classes) with pseudo labels for ``fit``."""
    root = make_tiny_tree(tmp_path_factory.mktemp("tree") / "voc")
    d = root.parent
    data = ["--data", root, "--split", "train"]
    for args in (["cues", *data, "--out", d / "cues_pts.h5"], ["wsss", *data, "--from-gt", "--out", d / "gt.h5"],
                 ["transfer", *data, "--cues", d / "cues_pts.h5", "--wsss", d / "gt.h5", "--out", d / "pseudo.h5"]):
        r = invoke("labels", args)
        assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def small_pam_input(monkeypatch):
    """The official shorter side (321) makes VGG-16 slow on a CPU: 32 px for the command tests."""
    from bestie_labels.classifier import official

    monkeypatch.setitem(official.OFFICIAL_OPTIONS, "test_size", 32)


def _loaded(path):
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------ classifier

def test_pam_file_through_the_api(files):
    model = bestie_labels.load_classifier(files["pam20"])
    sd = _loaded(files["pam20"])["model"]
    assert not model.training and model.num_classes == 20 and model.backbone_name == "vgg16"
    assert model.class_names[:2] == ["aeroplane", "bicycle"] and model.test_size == 321
    ours = model.state_dict()
    # every tensor of ours came from the file (aliases layerI_convJ are the same tensors)
    assert len(ours) == 13 * 2 + 4 * 2
    assert torch.equal(ours["backbone.features.28.weight"], sd["layer5_conv3.weight"])
    assert torch.equal(ours["extra.0.weight"], sd["extra_conv1.weight"])
    assert torch.equal(ours["extra.4.bias"], sd["extra_conv3.bias"])
    assert torch.equal(ours["classifier.weight"], sd["extra_conv4.weight"])
    model.test_size = 40  # keep the forward pass cheap
    labels = np.zeros(20, bool)
    labels[[2, 11]] = True
    maps = bestie_labels.activation_maps(model, np.full((30, 50, 3), 120, np.uint8), labels)
    assert maps.shape == (20, 30, 50) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1 and not maps[~labels].any()


def test_pam_file_class_count_refused(files):
    from bestie_labels.classifier.maps import load_classifier

    with pytest.raises(BestieError, match=r"extra_conv4\) is for 20 classes but the dataset has 4") as e:
        load_classifier(files["pam20"], num_classes=4)
    assert e.value.path is not None and str(e.value.path).endswith("PAM.pth")


@pytest.mark.parametrize("method", ["pam", "cam"])
def test_pam_file_in_cues(files, tree, tmp_path, small_pam_input, method):
    r = invoke("labels", ["cues", "--data", tree, "--split", "train", "--method", method,
                          "--checkpoint", files["pam4"], "--out", tmp_path / "cues.h5"])
    assert r.exit_code == 0, r.output
    ds = open_dataset(tree, split="train")
    with Store(tmp_path / "cues.h5", stage="cues") as s:
        assert s.options["method"] == method and sorted(s.image_ids) == sorted(ds.image_ids)
        for rec in ds.records:  # checked: inside the image, classes 0..C-1; only labelled classes
            pts = read_cues(s, rec, NUM_CLASSES).points
            assert (pts[:, 3] >= s.options["min_conf"]).all()
            assert rec.labels[pts[:, 2].astype(int)].all()


def test_pam_file_in_wsss(files, tree, tmp_path, small_pam_input):
    r = invoke("labels", ["wsss", "--data", tree, "--split", "train", "--method", "cam",
                          "--checkpoint", files["pam4"], "--out", tmp_path / "wsss.h5"])
    assert r.exit_code == 0, r.output
    ds = open_dataset(tree, split="train")
    with Store(tmp_path / "wsss.h5", stage="wsss") as s:
        assert s.options["method"] == "cam" and sorted(s.image_ids) == sorted(ds.image_ids)
        for rec in ds.records:  # checked: the image's size, values 0..C or void; only labelled classes
            mask = read_wsss(s, rec, NUM_CLASSES).mask
            fg = np.unique(mask[(mask > 0) & (mask != VOID)]).astype(int) - 1
            assert rec.labels[fg].all()


def test_pam_file_with_other_class_count_in_cues_one_line(files, tree, tmp_path, small_pam_input):
    r = invoke("labels", ["cues", "--data", tree, "--split", "train", "--method", "pam",
                          "--checkpoint", files["pam20"], "--out", tmp_path / "cues.h5"])
    assert_one_line_error(r, "PAM.pth", "20 classes but the dataset has 4")
    assert not (tmp_path / "cues.h5").exists()


def test_pam_file_starts_train_pam(files, tree, tmp_path):
    out = tmp_path / "pam.pt"
    r = invoke("labels", ["train-pam", "--data", tree, "--split", "train", "--backbone", "vgg16",
                          "--pretrained", files["pam4"], "--epochs", "1", "--batch-size", "3", "--lr", "1e-9",
                          "--input-size", "32", "--crop-size", "32", "--val-split", "none", "--out", out])
    assert r.exit_code == 0, r.output
    assert "whole classifier" in r.output and "0 missing, 0 unexpected" in r.output
    src = _loaded(files["pam4"])["model"]
    trained = bestie_labels.load_classifier(out).state_dict()
    # one step at lr 1e-9 (x20 for new biases): the weights are the file's
    assert torch.allclose(trained["classifier.weight"], src["extra_conv4.weight"], atol=1e-6)
    assert torch.allclose(trained["backbone.features.0.weight"], src["features.0.weight"], atol=1e-6)


def test_pam_file_refused_for_another_backbone(files, tree, tmp_path):
    r = invoke("labels", ["train-pam", "--data", tree, "--split", "train", "--backbone", "tiny",
                          "--pretrained", files["pam4"], "--epochs", "1", "--val-split", "none",
                          "--out", tmp_path / "pam.pt"])
    assert_one_line_error(r, "PAM4.pth", "vgg16 classifier, not tiny")


# ------------------------------------------------------------------------------- trainer

def test_bestie_hrnet48_through_the_api(files):
    model = bestie_train.load_model(files["w48"])
    sd = _loaded(files["w48"])["model"]
    ours = model.state_dict()
    assert not model.training and model.backbone_name == "hrnet_w48" and model.num_classes == 20
    assert sorted(ours) == sorted(sd)  # no missing, no unexpected key
    assert all(torch.equal(ours[k], sd[k]) for k in ("conv1.weight", "stage4.2.fuse_layers.0.3.1.running_var",
                                                     "seg.2.weight", "center.0.bias", "offset.2.bias"))
    assert model.class_names[0] == "aeroplane"
    out = bestie_train.infer(model, np.full((37, 45, 3), 90, np.uint8))
    assert {k: v.shape for k, v in out.items()} == {"semantic": (21, 37, 45), "center": (20, 37, 45),
                                                     "offset": (2, 37, 45)}
    assert all(v.dtype == np.float32 for v in out.values())


def test_api_loads_our_own_checkpoint(tmp_path):
    from badinput_helpers import make_train_checkpoint

    path = make_train_checkpoint(tmp_path / "best.pt", ["a", "b", "c"])
    model = bestie_train.load_model(path)
    assert model.class_names == ["a", "b", "c"] and not model.training
    out = bestie_train.infer(model, np.zeros((20, 28, 3), np.uint8))
    assert out["semantic"].shape == (4, 20, 28) and out["offset"].shape == (2, 20, 28)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_bestie_hrnet_in_predict_and_evaluate(files, tree, tmp_path, command):
    out = tmp_path / "out.json"
    r = invoke("train", [command, "--checkpoint", files["w32"], "--data", tree, "--split", "val", "--out", out])
    assert r.exit_code == 0, r.output
    js = json.loads(out.read_text())
    assert isinstance(js, list) if command == "predict" else "mAP50" in json.dumps(js)


def test_bestie_hrnet_class_count_refused_in_predict(files, tree, tmp_path):
    r = invoke("train", ["predict", "--checkpoint", files["w48"], "--data", tree, "--split", "val",
                         "--out", tmp_path / "out.json"])
    assert_one_line_error(r, "BESTIE_HRNet48_image_label.pt", "HRNet-W48 checkpoint: its heads are for 20 classes "
                          "but the dataset has 4")
    assert not (tmp_path / "out.json").exists()


def test_fit_starts_from_the_official_network(files, tree, tmp_path):
    d = tree.parent
    out = tmp_path / "run"
    r = invoke("train", ["fit", "--data", tree, "--split", "train", "--pseudo", d / "pseudo.h5", "--wsss",
                         d / "gt.h5", "--out", out, "--backbone", "hrnet_w32", "--iters", "1", "--crop", "32",
                         "--batch-size", "2", "--warmup", "0", "--lr", "1e-9", "--val-split", "none",
                         "--pretrained", files["w32"]])
    assert r.exit_code == 0, r.output
    src = _loaded(files["w32"])["model"]
    assert f"whole network: {files['w32']}: loaded {len(src)} tensors, 0 missing, 0 unexpected" in r.output
    last = _loaded(out / "last.pt")["model"]
    for k in ("stage3.0.branches.1.0.conv1.weight", "center.2.weight", "seg.0.bias"):
        assert torch.allclose(last[k], src[k], atol=1e-6), k  # one step at lr 1e-9


def test_hrnet_imagenet_file_as_pretrained(files):
    """What ``fit --pretrained hrnet_w32-36af842e.pth`` calls: the trunk loads with no missing or
    unexpected key; the classification head and the extra fusion rows are ignored."""
    from bestie_train.model import build_model

    model = build_model("hrnet_w32", NUM_CLASSES, pretrained=str(files["imagenet32"]), verbose=False)
    rep = model.pretrained_report
    assert rep.missing == [] and rep.unexpected == [] and len(rep.loaded) == 1752 and len(rep.ignored) == 83
    src = _loaded(files["imagenet32"])
    assert torch.equal(model.state_dict()["stage4.2.fuse_layers.0.3.0.weight"], src["stage4.2.fuse_layers.0.3.0.weight"])


def test_official_network_for_another_backbone_or_class_count_refused(files):
    from bestie_train.model import build_model

    with pytest.raises(BestieError, match="HRNet-W32 checkpoint cannot start a tiny network"):
        build_model("tiny", NUM_CLASSES, pretrained=str(files["w32"]), verbose=False)
    with pytest.raises(BestieError, match="heads are for 4 classes but the dataset has 3"):
        build_model("hrnet_w32", 3, pretrained=str(files["w32"]), verbose=False)
