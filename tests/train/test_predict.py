"""Inference: padding and flip TTA, COCO outputs pycocotools reads, checkpoint refusals, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bestie_labels.datasets import open_dataset
from bestie_labels.core.errors import BestieError
from bestie_labels.stages import run_cues, run_transfer, run_wsss
from bestie_train.checkpoint import load_checkpoint, save_checkpoint
from bestie_train.fit import fit
from bestie_train.predict import evaluate, network_outputs, predict


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory):
    """A checkpoint trained for a few iterations on the tiny demo (no validation)."""
    d = tmp_path_factory.mktemp("predict")
    ds = open_dataset(demo_root, split="train")
    run_wsss(ds, d / "wsss.h5", from_gt=True)
    run_cues(ds, d / "cues.h5", method="points")
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", d / "pseudo.h5")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    fit(ds, d / "pseudo.h5", d / "wsss.h5", d / "run", iters=3, crop=32, batch_size=2, lr=1e-3,
        warmup=1, progress=False)
    torch.set_num_threads(n)
    # Three iterations predict little; a copy whose semantic head says "class 0" everywhere
    # gives one region per image, hence predictions to check the output formats on.
    c = load_checkpoint(d / "run" / "best.pt")
    c["model"]["semantic_head.out.weight"].zero_()
    c["model"]["semantic_head.out.bias"].copy_(torch.tensor([0.0, 4.0, 0.0, 0.0, 0.0]))
    forced = save_checkpoint(d / "forced.pt", c)
    return demo_root, d / "run" / "best.pt", forced


class FakeNet(torch.nn.Module):
    """Outputs that are not flip-equivariant, to check the flip-back arithmetic by hand:
    semantic logits favour class 1 on the left half of the padded input, center = column
    index, offset = (dy 1, dx 2) everywhere."""

    def forward(self, x):
        b, _, h, w = x.shape
        col = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(b, 1, h, w)
        sem = torch.cat([torch.zeros(b, 1, h, w), (col < w / 2).float() * 2.0], 1)
        off = torch.cat([torch.ones(b, 1, h, w), torch.full((b, 1, h, w), 2.0)], 1)
        return {"semantic": sem, "center": col.clone(), "offset": off}


def test_network_outputs_pad_crop_and_flip_average():
    img = np.zeros((40, 50, 3), np.uint8)
    net = FakeNet()
    o = network_outputs(net, img)
    assert o["center"].shape == (1, 40, 50) and o["offset"].shape == (2, 40, 50)
    # padded to 64 x 64, cropped back: the column index survives
    assert torch.equal(o["center"][0, 0], torch.arange(50, dtype=torch.float32))
    f = network_outputs(net, img, flip=True)
    # center: (x + (63 - x)) / 2 on the 64-wide padded input
    assert torch.allclose(f["center"], torch.full((1, 40, 50), 31.5))
    # offsets: dy averaged, dx negated on the flipped copy -> 0
    assert torch.allclose(f["offset"][0], torch.ones(40, 50)) and torch.allclose(f["offset"][1], torch.zeros(40, 50))
    # semantic: log of the mean probability; on the left half of the padded input the plain
    # copy says class 1 (p = e^2 / (1 + e^2)) and the flipped copy says class 0 there
    p1 = np.exp(2) / (1 + np.exp(2))
    prob = f["semantic"].softmax(0)
    assert float(prob[1, 0, 0]) == pytest.approx((p1 + 0.5) / 2, rel=1e-5)


def test_predict_results_load_in_pycocotools(run, tmp_path):
    from pycocotools.coco import COCO

    root, _, ckpt = run
    val = open_dataset(root, split="val")
    out = tmp_path / "preds.json"
    r = predict(ckpt, val, out, progress=False)
    js = json.loads(out.read_text())
    assert isinstance(js, list) and len(js) == r["instances"] > 0
    ids = {rec.coco_id for rec in val.records}
    for a in js:
        assert a["image_id"] in ids and 1 <= a["category_id"] <= val.num_classes
        assert a["category_id"] == 1  # the forced class
        assert isinstance(a["segmentation"]["counts"], str) and np.isfinite(a["score"])
        rec = val.record_by_coco_id(a["image_id"])
        assert a["segmentation"]["size"] == [rec.height, rec.width]
    gt = tmp_path / "gt.json"
    from bestie_labels.formats.coco_json import image_entry

    gt.write_text(json.dumps({"images": [image_entry(val, x) for x in val.records], "annotations": [],
                              "categories": val.coco_categories()}))
    coco = COCO(str(gt))
    res = coco.loadRes(str(out))
    assert len(res.anns) == len(js)
    # flip TTA and the instances format
    out2 = tmp_path / "inst.json"
    r2 = predict(ckpt, val, out2, flip=True, fmt="coco", progress=False)
    inst = COCO(str(out2))
    assert len(inst.imgs) == len(val) and len(inst.anns) == r2["instances"]
    assert sorted(inst.cats) == list(range(1, val.num_classes + 1))


def _one_gt_instance_net(monkeypatch, val):
    """Replace the network by outputs that give, for each val image in turn, exactly its largest
    GT instance (semantic logits of its class on its mask, a center peak at its first pixel,
    offsets to it). Returns ``{class: (found, num GT)}``."""
    import bestie_train.predict as predict_mod

    outputs, tally = [], {}
    for rec in val.records:
        gt = val.load_gt(rec)
        n = int(np.argmax(gt.masks.sum((1, 2))))
        m = torch.from_numpy(gt.masks[n])
        assert int(m.sum()) >= 50  # post-processing keeps regions of 50 px and more
        k = int(gt.classes[n])
        for c in gt.classes.tolist():  # every GT instance counts; one of them is found
            found, total = tally.get(c, (0, 0))
            tally[c] = (found, total + 1)
        tally[k] = (tally[k][0] + 1, tally[k][1])
        sem = torch.zeros(val.num_classes + 1, rec.height, rec.width)
        sem[0] = 5.0
        sem[:, m] = 0.0
        sem[k + 1, m] = 10.0
        cy, cx = (int(v[0]) for v in torch.nonzero(m)[:1].T)
        ctr = torch.zeros(val.num_classes, rec.height, rec.width)
        ctr[k, cy, cx] = 1.0
        ys, xs = torch.meshgrid(torch.arange(rec.height), torch.arange(rec.width), indexing="ij")
        off = torch.stack([cy - ys, cx - xs]).float()
        outputs.append({"semantic": sem, "center": ctr, "offset": off})
    it = iter(outputs)
    monkeypatch.setattr(predict_mod, "network_outputs", lambda *a, **k: next(it))
    return tally


def _expected_metrics(val, tally) -> dict:
    """Every prediction is an exact GT mask: VOC AP of a class = found / GT at every IoU (all
    true positives, precision 1); COCO AP = the share of the 101 recall points <= that recall
    (0 for a class with no detection)."""
    names = val.class_names
    voc = {names[c]: 100.0 * f / t for c, (f, t) in tally.items()}
    coco = np.mean([np.sum(np.linspace(0, 1, 101) <= f / t + 1e-12) / 101 if f else 0.0
                    for f, t in tally.values()]) * 100
    return {"per_class": voc, "mean": float(np.mean(list(voc.values()))), "coco": float(coco)}


def test_evaluate_returns_the_evaluation_json(run, tmp_path, monkeypatch):
    root, ckpt, _ = run
    val = open_dataset(root, split="val")
    tally = _one_gt_instance_net(monkeypatch, val)
    want = _expected_metrics(val, tally)
    assert 0 < want["mean"] < 100  # some GT is missed: the figures are not all 0 or 100
    m = evaluate(ckpt, val, out=tmp_path / "m.json", progress=False)
    assert json.loads((tmp_path / "m.json").read_text()) == m
    for key in ("mAP25", "mAP50", "mAP70", "mAP75"):
        assert m["voc"][key] == pytest.approx(want["mean"], abs=1e-3)
    assert {c: v["AP50"] for c, v in m["voc"]["per_class"].items()} == pytest.approx(want["per_class"], abs=1e-3)
    assert m["coco"] == pytest.approx({"AP": want["coco"], "AP50": want["coco"], "AP75": want["coco"]}, abs=1e-3)
    assert m["num_images"] == len(val) and m["num_predictions"] == len(val)


def test_checkpoint_for_other_classes_is_refused(run, tmp_path):
    root, ckpt, _ = run
    c = load_checkpoint(ckpt)
    c["class_names"] = c["class_names"][:3]
    other = save_checkpoint(tmp_path / "three.pt", c)
    val = open_dataset(root, split="val")
    with pytest.raises(BestieError, match=r"three.pt: checkpoint is for 3 classes but the dataset has 4"):
        predict(other, val, tmp_path / "p.json", progress=False)
    assert not (tmp_path / "p.json").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BestieError, match="junk.pt: cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")

    from bestie_cli.train import main

    res = CliRunner().invoke(main, ["predict", "--checkpoint", str(other), "--data", str(root), "--split", "val",
                                    "--out", str(tmp_path / "p.json")])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert lines == [f"Error: {other}: checkpoint is for 3 classes but the dataset has 4"]
    assert not (tmp_path / "p.json").exists()


def test_cli_evaluate_writes_metrics(run, tmp_path, monkeypatch):
    from bestie_cli.train import main

    root, _, ckpt = run
    val = open_dataset(root, split="val")
    want = _expected_metrics(val, _one_gt_instance_net(monkeypatch, val))
    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(ckpt), "--data", str(root), "--split", "val",
                                    "--out", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["num_images"] == 3 and m["num_predictions"] == 3
    assert m["voc"]["mAP50"] == pytest.approx(want["mean"], abs=1e-3)
    assert m["coco"]["AP"] == pytest.approx(want["coco"], abs=1e-3)
    mean_row = next(ln for ln in res.output.splitlines() if ln.startswith("mean"))
    assert mean_row.split()[1:] == [f"{want['mean']:.1f}"] * 4


def test_predict_figures(run, tmp_path):
    """--vis: image | GT instances | predictions, one PNG per chosen image, predictions painted."""
    import cv2

    root, _, ckpt = run
    val = open_dataset(root, split="val")
    predict(ckpt, val, tmp_path / "p.json", progress=False, vis_dir=tmp_path / "vis", num_vis=2)
    pngs = sorted((tmp_path / "vis").glob("*.png"))
    assert [p.stem for p in pngs] == sorted({val.records[0].image_id, val.records[-1].image_id})
    rec = val.records[0]
    fig = cv2.imread(str(tmp_path / "vis" / f"{rec.image_id}.png"))[..., ::-1]
    w = rec.width
    assert fig.shape == (rec.height, 3 * w + 8, 3)
    image = val.load_image(rec).astype(int)
    # the forced checkpoint predicts class 0 regions: the prediction panel differs from the image
    assert np.abs(fig[:, 2 * w + 8:].astype(int) - image).mean() > 5
    assert np.array_equal(fig[:, :w], image)  # the first panel is the image itself


def test_flip_default_follows_the_checkpoints_supervision():
    import torch

    from bestie_train.predict import resolve_flip

    m = torch.nn.Identity()
    assert resolve_flip(None, m) is False  # no recorded supervision: image-level
    m.sup = "cls"
    assert resolve_flip(None, m) is False
    m.sup = "point"  # the official point-label inference flips
    assert resolve_flip(None, m) is True and resolve_flip(False, m) is False
    m.sup = "cls"
    assert resolve_flip(True, m) is True


def test_predict_image_gives_what_predict_gives_for_that_image(run):
    """The one-image API (issue 19 item 7): the masks, classes and scores `predict` finds for
    an image, with the class names of its instances."""
    import bestie_train
    from bestie_train.predict import iter_predictions

    root, _, ckpt = run
    val = open_dataset(root, split="val")
    model = bestie_train.load_model(ckpt)
    want = next(iter_predictions(model, val, progress=False))
    got = bestie_train.predict_image(model, val.load_image(val.records[0]), flip=False)
    assert len(got["classes"]) > 0 and got["masks"].shape == (len(got["classes"]), val[0].height, val[0].width)
    for k in ("masks", "classes", "scores"):
        np.testing.assert_array_equal(got[k], want[k])
    assert model.class_names == val.class_names
    assert got["class_names"] == [val.class_names[c] for c in want["classes"]]
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\) uint8"):
        bestie_train.predict_image(model, np.zeros((4, 4), np.uint8))


def test_cli_evaluate_html(run, tmp_path, monkeypatch):
    """--html: per image the predictions against the GT (each image's one prediction is its
    largest GT instance: 1 TP, 0 FP, the rest missed), the per-class AP table, the curves."""
    from bestie_cli.train import main

    root, best, ckpt = run
    val = open_dataset(root, split="val")
    want = _expected_metrics(val, _one_gt_instance_net(monkeypatch, val))
    out = tmp_path / "html"
    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(ckpt), "--data", str(root), "--split", "val",
                                    "--html", str(out), "--metrics-log", str(best.parent / "metrics.jsonl")])
    assert res.exit_code == 0, res.output
    assert f"wrote the HTML report: {out / 'index.html'}" in res.output
    js = (out / "data.js").read_text()
    rows = {r["id"]: r for r in json.loads(js[js.index("=") + 1:].strip().rstrip(";"))["images"]}
    for rec in val.records:
        n_gt = len(val.load_gt(rec).classes)
        assert (rows[rec.image_id]["preds"], rows[rec.image_id]["fp"], rows[rec.image_id]["missed"]) == (1, 0, n_gt - 1)
    index = (out / "index.html").read_text()
    name, ap = next(iter(want["per_class"].items()))
    assert f"<td>{name}</td><td>{ap:.1f}</td>" in index
    assert (out / "plots" / "curves.png").stat().st_size > 1000 and 'src="plots/curves.png"' in index
    page = (out / "pages" / f"{val.records[0].image_id}.html").read_text()
    assert page.count('class="panel"') == 3 and "TP (IoU &gt;= 0.5)" in page
