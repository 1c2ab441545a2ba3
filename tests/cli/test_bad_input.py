"""Bad-input matrix: every kind of bad input against the real commands (issue 7, item 1).

Each cell copies a tiny VOC tree (4 images of 32x32) and a set of good stores into its own
folder, damages one thing, runs one command in-process (Click's CliRunner) and asserts:

* ``error`` cells: a non-zero exit, no traceback, exactly one ``Error:`` line naming the file
  and the problem, and the whole work folder (inputs, outputs, temporary names) byte-identical
  to before: no output left behind, no earlier output altered (``prior`` cells hold a complete
  output from good inputs and run with ``--force``).
* ``warn`` cells (the right answer is to skip the image): exit 0, the store written with every
  image, and the warning counted in the printed summary (``warnings: name xN``).

The cells are listed in ``CELLS`` (cell, command) -> builder; the builder damages the work
folder and returns what to run and what to expect.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from badinput_helpers import (gt_results, NUM_CLASSES, SIZE, TRAIN_IDS, VAL_IDS, assert_one_line_error, copy_tree,
                              invoke, make_pam_checkpoint, make_good_inputs, make_train_checkpoint, snapshot,
                              truncate_file, write_palette_png, write_rgb_png, zero_tail)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: --min-area of transfer: the 32x32 demo objects have a 2-px void outline, so they are small.
MIN_AREA = "4"
#: What a cut JPEG is called: OpenCV refuses some cuts outright, others decode partly and are
#: caught by the missing end-of-image marker.
JPEG_BAD = r"truncated JPEG \(no end-of-image marker\)"


# ----------------------------------------------------------------------------------------
# good inputs, built once
# ----------------------------------------------------------------------------------------
def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A tiny tree and good inputs: cues/wsss/pseudo stores of train, GT mask PNGs, and a valid
    predictions file of val (the GT itself)."""
    base = tmp_path_factory.mktemp("badinput")
    tree, inp = make_good_inputs(base, MIN_AREA)
    from bestie_labels.datasets import open_dataset

    ds = open_dataset(tree, "train")
    (inp / "masks").mkdir()
    for rec in ds.records:
        write_palette_png(inp / "masks" / f"{rec.image_id}.png", ds.load_gt(rec).semantic())
    preds = gt_results(open_dataset(tree, "val"))
    assert preds
    (inp / "preds.json").write_text(json.dumps(preds))
    return base


@pytest.fixture(scope="module")
def checkpoints(good):
    """Tiny untrained checkpoints built through the libraries: PAM classifiers (train-pam
    format) and instance networks (bestie-train format) for 4 (right) and 3 (wrong) classes."""
    out = good / "ckpt"
    out.mkdir(exist_ok=True)
    names = (good / "voc" / "class_names.txt").read_text().split()
    for n in (4, 3):
        make_pam_checkpoint(out / f"pam{n}.pt", names[:n])
        make_train_checkpoint(out / f"model{n}.pt", names[:n])
    return out


# ----------------------------------------------------------------------------------------
# the work folder of one cell
# ----------------------------------------------------------------------------------------
@dataclass
class Work:
    root: Path      # everything a cell touches lives here (snapshotted before and after)
    voc: Path       # a copy of the tiny tree
    inp: Path       # copies of the good stores / masks / predictions
    out: Path       # empty output folder
    ckpt: Path | None = None

    def data(self, split: str = "train", root: Path | None = None) -> list:
        return ["--data", root or self.voc, "--split", split]

    def store_copy(self, name: str) -> Path:
        return self.inp / name


@dataclass
class Cell:
    group: str                 # "labels" (bestie-labels) or "train" (bestie-train)
    args: list
    file: str = ""             # error cells: a name the error line must hold
    problem: str = ""          # error cells: a regular expression the error line must match
    warn: dict = field(default_factory=dict)   # warn cells: {warning name: count}
    out: Path | None = None    # warn cells: the store that must be written
    prior: bool = False        # a complete earlier output exists (and --force is given)


CELLS: dict[tuple[str, str], tuple[Callable[[Work], Cell], str | None]] = {}
#: Cells that fail because of a known bug in a module still being written: {key: reason}.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def cell(name: str, command: str, needs: str | None = None, bug: str | None = None):
    """Register a builder for the matrix cell ``(name, command)``; ``needs`` is a module.

    ``bug`` marks the cell ``xfail(strict=True)`` with that reason (a known bug, reported)."""
    def deco(fn):
        CELLS[(name, command)] = (fn, needs)
        if bug:
            KNOWN_BUGS[(name, command)] = bug
        return fn
    return deco


# Commands that open a dataset, with their other inputs good: (command, needs, argv builder).
def _argv(w: Work, command: str, data: list) -> tuple[str, list]:
    i, o = w.inp, w.out
    return {
        "cues": ("labels", ["cues", *data, "--out", o / "cues.h5"]),
        "wsss": ("labels", ["wsss", *data, "--from-gt", "--out", o / "wsss.h5"]),
        "transfer": ("labels", ["transfer", *data, "--cues", i / "cues.h5", "--wsss", i / "wsss.h5",
                                "--min-area", MIN_AREA, "--out", o / "pseudo.h5"]),
        "report": ("labels", ["report", *data, "--pseudo", i / "pseudo.h5", "--out", o / "report.json"]),
        "export": ("labels", ["export", *data, "--pseudo", i / "pseudo.h5", "--out", o / "coco.json"]),
        "evaluate": ("labels", ["evaluate", *data, "--predictions", i / "preds.json", "--out", o / "m.json"]),
        "train-pam": ("labels", ["train-pam", *data, "--backbone", "tiny", "--epochs", "1",
                                 "--val-split", "none", "--out", o / "pam.pt"]),
        "fit": ("train", ["fit", *data, "--pseudo", i / "pseudo.h5", "--wsss", i / "wsss.h5",
                          "--iters", "1", "--batch-size", "2", "--crop", "32", "--val-split", "none",
                          "--out", o / "run"]),
        "train-irn": ("labels", ["train-irn", *data, "--checkpoint", w.ckpt / "pam4.pt" if w.ckpt else "x",
                                 "--epochs", "1", "--out", o / "irn.pt"]),
        "predict": ("train", ["predict", "--checkpoint", w.ckpt / "model4.pt" if w.ckpt else "x", *data,
                              "--out", o / "pred.json"]),
        "train-evaluate": ("train", ["evaluate", "--checkpoint", w.ckpt / "model4.pt" if w.ckpt else "x",
                                     *data, "--out", o / "m.json"]),
    }[command]


_NEEDS = {"train-pam": "bestie_cli.labels_train_pam", "fit": "bestie_cli.train_fit", "predict": "bestie_cli.train_predict",
          "train-evaluate": "bestie_cli.train_evaluate", "train-irn": "bestie_cli.labels_train_irn"}
_CKPT = {"predict", "train-evaluate", "train-irn"}
ALL = ["cues", "wsss", "transfer", "report", "export", "evaluate", "train-pam", "fit", "predict",
       "train-evaluate", "train-irn"]

# --- dataset root -----------------------------------------------------------------------
for _c in ALL:
    def _missing(w: Work, _c=_c) -> Cell:
        g, a = _argv(w, _c, w.data(root=w.root / "nowhere"))
        return Cell(g, a, "nowhere", "dataset not found")

    def _empty(w: Work, _c=_c) -> Cell:
        (w.root / "empty").mkdir()
        g, a = _argv(w, _c, w.data(root=w.root / "empty"))
        return Cell(g, a, "empty", "dataset folder is empty")

    cell("missing dataset root", _c, _NEEDS.get(_c))(_missing)
    cell("empty dataset root", _c, _NEEDS.get(_c))(_empty)


# --- split listing a missing image ------------------------------------------------------
for _c in ("cues", "wsss", "transfer", "evaluate", "train-pam", "fit", "train-irn"):
    def _split(w: Work, _c=_c) -> Cell:
        split = "val" if _c == "evaluate" else "train"
        (w.voc / "ImageSets/Segmentation" / f"{split}.txt").write_text(
            "".join(i + "\n" for i in (VAL_IDS if split == "val" else TRAIN_IDS)) + "2000_999999\n")
        g, a = _argv(w, _c, w.data(split))
        return Cell(g, a, "2000_999999.jpg", rf"image listed in split '{split}' not found")

    cell("split lists a missing image", _c, _NEEDS.get(_c))(_split)


# --- truncated JPEG ---------------------------------------------------------------------
@cell("truncated JPEG", "report --overlays")
def _trunc_report(w: Work) -> Cell:
    zero_tail(w.voc / "JPEGImages" / f"{TRAIN_IDS[1]}.jpg")
    return Cell("labels", ["report", *w.data(), "--pseudo", w.inp / "pseudo.h5", "--out", w.out / "r.json",
                           "--overlays", w.out / "ov"], f"{TRAIN_IDS[1]}.jpg", JPEG_BAD)


@cell("truncated JPEG", "cues --method pam", needs="bestie_labels.classifier.maps")
def _trunc_pam(w: Work) -> Cell:
    truncate_file(w.voc / "JPEGImages" / f"{TRAIN_IDS[1]}.jpg")
    return Cell("labels", ["cues", *w.data(), "--method", "pam", "--checkpoint", w.ckpt / "pam4.pt",
                           "--out", w.out / "cues.h5"], f"{TRAIN_IDS[1]}.jpg", JPEG_BAD)


@cell("truncated JPEG", "wsss --method cam", needs="bestie_labels.classifier.maps")
def _trunc_cam(w: Work) -> Cell:
    truncate_file(w.voc / "JPEGImages" / f"{TRAIN_IDS[2]}.jpg")
    return Cell("labels", ["wsss", *w.data(), "--method", "cam", "--checkpoint", w.ckpt / "pam4.pt",
                           "--out", w.out / "wsss.h5"], f"{TRAIN_IDS[2]}.jpg", JPEG_BAD)


@cell("truncated JPEG", "train-pam", needs="bestie_cli.labels_train_pam")
def _trunc_train_pam(w: Work) -> Cell:
    truncate_file(w.voc / "JPEGImages" / f"{TRAIN_IDS[0]}.jpg")
    g, a = _argv(w, "train-pam", w.data())
    return Cell(g, a, f"{TRAIN_IDS[0]}.jpg", JPEG_BAD)




@cell("truncated JPEG", "fit", needs="bestie_cli.train_fit")
def _trunc_fit(w: Work) -> Cell:
    zero_tail(w.voc / "JPEGImages" / f"{TRAIN_IDS[0]}.jpg")
    g, a = _argv(w, "fit", w.data())
    return Cell(g, a, f"{TRAIN_IDS[0]}.jpg", JPEG_BAD)


@cell("truncated JPEG", "predict", needs="bestie_cli.train_predict")
def _trunc_predict(w: Work) -> Cell:
    truncate_file(w.voc / "JPEGImages" / f"{VAL_IDS[0]}.jpg")
    g, a = _argv(w, "predict", w.data("val"))
    return Cell(g, a, f"{VAL_IDS[0]}.jpg", JPEG_BAD)


# --- PNG masks: wrong size, wrong mode, index above the class count -------------------------
def _gt(w: Work, sub: str, image_id: str) -> Path:
    return w.voc / sub / f"{image_id}.png"


@cell("mask of the wrong size", "wsss --import")
def _size_import(w: Work) -> Cell:
    write_palette_png(w.inp / "masks" / f"{TRAIN_IDS[1]}.png", np.zeros((SIZE, SIZE // 2), np.uint8))
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"],
                f"{TRAIN_IDS[1]}.png", r"mask is 16x32 but the image is 32x32")


@cell("mask of the wrong size", "wsss --import --force over a good store")
def _size_import_prior(w: Work) -> Cell:
    assert invoke("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"]).exit_code == 0
    write_palette_png(w.inp / "masks" / f"{TRAIN_IDS[2]}.png", np.zeros((SIZE + 1, SIZE), np.uint8))
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5",
                           "--force"], f"{TRAIN_IDS[2]}.png", r"mask is 32x33 but the image is 32x32", prior=True)


@cell("mask of the wrong size", "evaluate (GT SegmentationObject)")
def _size_eval(w: Work) -> Cell:
    write_palette_png(_gt(w, "SegmentationObject", VAL_IDS[0]), np.zeros((8, 8), np.uint8))
    g, a = _argv(w, "evaluate", w.data("val"))
    return Cell(g, a, f"SegmentationObject/{VAL_IDS[0]}.png", r"mask is 8x8 but the image is 32x32")


@cell("mask of the wrong size", "report (GT SegmentationClass)")
def _size_report(w: Work) -> Cell:
    write_palette_png(_gt(w, "SegmentationClass", TRAIN_IDS[0]), np.zeros((8, 8), np.uint8))
    g, a = _argv(w, "report", w.data())
    return Cell(g, a, f"SegmentationClass/{TRAIN_IDS[0]}.png", r"mask is 8x8 but the image is 32x32")


@cell("mask of the wrong size", "transfer --from-gt")
def _size_transfer_gt(w: Work) -> Cell:
    write_palette_png(_gt(w, "SegmentationObject", TRAIN_IDS[2]), np.zeros((8, 40), np.uint8))
    return Cell("labels", ["transfer", *w.data(), "--from-gt", "--out", w.out / "pseudo.h5"],
                f"SegmentationObject/{TRAIN_IDS[2]}.png", r"mask is 40x8 but the image is 32x32")


@cell("RGB mask", "wsss --import")
def _rgb_import(w: Work) -> Cell:
    write_rgb_png(w.inp / "masks" / f"{TRAIN_IDS[0]}.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"],
                f"{TRAIN_IDS[0]}.png", r"palette or 8-bit grey PNG, got mode RGB")


@cell("RGB mask", "evaluate (GT SegmentationClass)")
def _rgb_eval(w: Work) -> Cell:
    write_rgb_png(_gt(w, "SegmentationClass", VAL_IDS[0]), np.zeros((SIZE, SIZE, 3), np.uint8))
    g, a = _argv(w, "evaluate", w.data("val"))
    return Cell(g, a, f"SegmentationClass/{VAL_IDS[0]}.png", r"got mode RGB")


@cell("RGB mask", "wsss --from-gt")
def _rgb_wsss_gt(w: Work) -> Cell:
    write_rgb_png(_gt(w, "SegmentationObject", TRAIN_IDS[1]), np.zeros((SIZE, SIZE, 3), np.uint8))
    return Cell("labels", ["wsss", *w.data(), "--from-gt", "--out", w.out / "wsss.h5"],
                f"SegmentationObject/{TRAIN_IDS[1]}.png", r"got mode RGB")


@cell("corrupt PNG", "wsss --import")
def _corrupt_import(w: Work) -> Cell:
    truncate_file(w.inp / "masks" / f"{TRAIN_IDS[1]}.png", 0.6)
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"],
                f"{TRAIN_IDS[1]}.png", r"cannot decode PNG")


@cell("palette index above the class count", "wsss --import")
def _index_import(w: Work) -> Cell:
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[:4, :4] = NUM_CLASSES + 3
    write_palette_png(w.inp / "masks" / f"{TRAIN_IDS[2]}.png", m)
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"],
                f"{TRAIN_IDS[2]}.png", rf"mask index {NUM_CLASSES + 3} is above the class count {NUM_CLASSES}")


@cell("palette index above the class count", "evaluate (GT SegmentationClass)")
def _index_eval(w: Work) -> Cell:
    p = _gt(w, "SegmentationClass", VAL_IDS[0])
    from bestie_labels.core.fileio import read_index_png

    m = read_index_png(p).copy()
    m[0, 0] = 200
    write_palette_png(p, m)
    g, a = _argv(w, "evaluate", w.data("val"))
    return Cell(g, a, f"SegmentationClass/{VAL_IDS[0]}.png", rf"class index 200 above the class count {NUM_CLASSES}")


@cell("palette index above the class count", "wsss --from-gt")
def _index_wsss_gt(w: Work) -> Cell:
    p = _gt(w, "SegmentationClass", TRAIN_IDS[0])
    from bestie_labels.core.fileio import read_index_png

    m = read_index_png(p).copy()
    m[-1, -1] = NUM_CLASSES + 1
    write_palette_png(p, m)
    return Cell("labels", ["wsss", *w.data(), "--from-gt", "--out", w.out / "wsss.h5"],
                f"SegmentationClass/{TRAIN_IDS[0]}.png", rf"class index {NUM_CLASSES + 1} above the class count")


# --- unknown class names ------------------------------------------------------------------
def _unknown_xml(w: Work) -> str:
    p = w.voc / "Annotations" / f"{TRAIN_IDS[1]}.xml"
    text = p.read_text()
    first = text.split("<name>")[1].split("</name>")[0]
    p.write_text(text.replace(f"<name>{first}</name>", "<name>unicorn</name>", 1))
    return f"{TRAIN_IDS[1]}.xml"


for _c in ("cues", "wsss", "transfer", "train-pam"):
    def _xml(w: Work, _c=_c) -> Cell:
        name = _unknown_xml(w)
        g, a = _argv(w, _c, w.data())
        return Cell(g, a, name, r"unknown class 'unicorn'")

    cell("XML names an unknown class", _c, _NEEDS.get(_c))(_xml)


def _folder_dataset(w: Work, unknown: bool) -> Path:
    """A folder dataset (labels.csv) holding the tiny tree's train images."""
    root = w.root / "folder"
    root.mkdir()
    names = (w.voc / "class_names.txt").read_text()
    (root / "class_names.txt").write_text(names)
    rows = ["image,classes"]
    for k, i in enumerate(TRAIN_IDS):
        (root / f"{i}.jpg").write_bytes((w.voc / "JPEGImages" / f"{i}.jpg").read_bytes())
        rows.append(f"{i}.jpg,{'unicorn' if unknown and k == 1 else names.split()[0]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@cell("CSV names an unknown class", "cues --points")
def _csv_cues(w: Work) -> Cell:
    root = _folder_dataset(w, unknown=True)
    return Cell("labels", ["cues", *w.data(root=root), "--points", w.voc / "points", "--out", w.out / "cues.h5"],
                "labels.csv", r"line 3: unknown class 'unicorn'")


@cell("CSV names an unknown class", "train-pam", needs="bestie_cli.labels_train_pam")
def _csv_pam(w: Work) -> Cell:
    root = _folder_dataset(w, unknown=True)
    g, a = _argv(w, "train-pam", w.data(root=root))
    return Cell(g, a, "labels.csv", r"line 3: unknown class 'unicorn'")


@cell("label file names an unknown class index", "cues")
def _labels_file(w: Work) -> Cell:
    lab = w.root / "train_cls.txt"
    lab.write_text(f"{TRAIN_IDS[0]} 0\n{TRAIN_IDS[1]} 1 {NUM_CLASSES}\n{TRAIN_IDS[2]} 2\n")
    return Cell("labels", ["cues", *w.data(), "--labels", lab, "--out", w.out / "cues.h5"],
                "train_cls.txt", rf"line 2: class index out of range 0..{NUM_CLASSES - 1}")


@cell("malformed XML", "cues")
def _xml_malformed(w: Work) -> Cell:
    (w.voc / "Annotations" / f"{TRAIN_IDS[2]}.xml").write_text("<annotation><object>")
    g, a = _argv(w, "cues", w.data())
    return Cell(g, a, f"{TRAIN_IDS[2]}.xml", r"malformed XML")


@cell("binary split file", "wsss")
def _split_binary(w: Work) -> Cell:
    (w.voc / "ImageSets/Segmentation/train.txt").write_bytes(b"\xff\xfe2000\x00\n")
    g, a = _argv(w, "wsss", w.data())
    return Cell(g, a, "train.txt", r"split file is not UTF-8 text")


@cell("binary CSV", "cues --points")
def _csv_binary(w: Work) -> Cell:
    root = _folder_dataset(w, unknown=False)
    (root / "labels.csv").write_bytes(b"image,classes\n\xff\xfe.jpg,a\n")
    return Cell("labels", ["cues", *w.data(root=root), "--points", w.voc / "points", "--out", w.out / "cues.h5"],
                "labels.csv", r"not UTF-8 text")


@cell("label file lists a missing image", "transfer")
def _labels_missing(w: Work) -> Cell:
    # A label file lists the split's images (train_aug): each must exist.
    lab = w.root / "train_cls.txt"
    lab.write_text(f"{TRAIN_IDS[0]} 0\n2000_999999 2\n")
    g, a = _argv(w, "transfer", w.data())
    return Cell(g, [*a, "--labels", lab], "2000_999999.jpg", r"image listed in label file train_cls.txt not found")


def _coco_dataset(w: Work, edit: Callable[[dict], None]) -> tuple[Path, Path]:
    """The tiny tree's val image (with its GT) as a COCO instances file, then ``edit``-ed."""
    from bestie_labels.datasets import open_dataset
    from bestie_labels.evaluation.coco_ap import encode_masks

    ds = open_dataset(w.voc, "val")
    rec = ds.records[0]
    gt = ds.load_gt(rec)
    anns = [{"id": n + 1, "image_id": rec.coco_id, "category_id": int(c) + 1, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1],
             "segmentation": {"size": r["size"], "counts": r["counts"].decode()}}
            for n, (r, c) in enumerate(zip(encode_masks(gt.masks), gt.classes))]
    data = {"images": [{"id": rec.coco_id, "file_name": f"{rec.image_id}.jpg", "height": SIZE, "width": SIZE}],
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(ds.class_names)],
            "annotations": anns}
    edit(data)
    p = w.root / "instances.json"
    p.write_text(json.dumps(data))
    return p, w.voc / "JPEGImages"


@cell("COCO JSON: category without id", "cues --points")
def _coco_noid(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["categories"][1].pop("id"))
    return Cell("labels", ["cues", "--data", p, "--images", img, "--points", w.voc / "points", "--out", w.out / "c.h5"],
                "instances.json", r"categories\[1\] has no 'id'")


@cell("COCO JSON: image with a non-numeric height", "export")
def _coco_height(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["images"][0].update(height="32px"))
    return Cell("labels", ["export", "--data", p, "--images", img, "--pseudo", w.inp / "pseudo.h5",
                           "--out", w.out / "c.json"], "instances.json", r"images\[0\]: bad 'height'")


@cell("COCO JSON: annotation naming an unknown category", "evaluate")
def _coco_cat(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["annotations"][0].update(category_id=99))
    return Cell("labels", ["evaluate", "--data", p, "--images", img, "--predictions", w.inp / "preds.json",
                           "--out", w.out / "m.json"], "instances.json", r"annotation 1: unknown category id 99")


@cell("COCO JSON: malformed GT RLE", "evaluate")
def _coco_rle(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["annotations"][-1]["segmentation"].update(counts="zz{"))
    return Cell("labels", ["evaluate", "--data", p, "--images", img, "--predictions", w.inp / "preds.json",
                           "--out", w.out / "m.json"], "instances.json", r"malformed compressed RLE")


def _coco_poly(w: Work, poly: list, command: str = "export") -> Cell:
    """The COCO file with its first annotation a polygon ``poly``: refused when opened."""
    p, img = _coco_dataset(w, lambda d: d["annotations"][0].update(segmentation=[poly]))
    return Cell("labels", ["export", "--data", p, "--images", img, "--pseudo", w.inp / "pseudo.h5",
                           "--out", w.out / "c.json"], "instances.json", "")


@cell("COCO JSON: polygon with NaN (issue 23)", "export")
def _coco_poly_nan(w: Work) -> Cell:
    c = _coco_poly(w, [1, 1, float("nan"), 5, 9, 9])
    c.problem = r"annotation 1: polygon has a non-finite coordinate \(nan\)"
    return c


@cell("COCO JSON: polygon with Infinity (issue 23)", "export")
def _coco_poly_inf(w: Work) -> Cell:
    c = _coco_poly(w, [1, 1, 5, float("inf"), 9, 9])
    c.problem = r"annotation 1: polygon has a non-finite coordinate \(inf\)"
    return c


@cell("COCO JSON: polygon coordinate 1e12 (issue 23)", "export")
def _coco_poly_far(w: Work) -> Cell:
    c = _coco_poly(w, [1, 1, 1e12, 5, 9, 9])
    c.problem = r"annotation 1: polygon coordinate 1e\+12 is far outside the 32x32 image"
    return c


@cell("COCO JSON: polygon holding a string", "export")
def _coco_poly_str(w: Work) -> Cell:
    c = _coco_poly(w, [1, 1, "5", 5, 9, 9])
    c.problem = r"annotation 1: polygon is not a list of numbers"
    return c


@cell("COCO JSON: iscrowd 'yes' (issue 23)", "evaluate")
def _coco_crowd_str(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["annotations"][0].update(iscrowd="yes"))
    return Cell("labels", ["evaluate", "--data", p, "--images", img, "--predictions", w.inp / "preds.json",
                           "--out", w.out / "m.json"], "instances.json", r"annotation 1: iscrowd must be 0 or 1, got 'yes'")


@cell("COCO JSON: duplicate annotation ids (issue 23)", "evaluate")
def _coco_dup_ann(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["annotations"][-1].update(id=1))
    return Cell("labels", ["evaluate", "--data", p, "--images", img, "--predictions", w.inp / "preds.json",
                           "--out", w.out / "m.json"], "instances.json", r"annotation id 1 is used twice")


@cell("COCO JSON: absolute file_name (issue 23)", "export")
def _coco_abs_name(w: Work) -> Cell:
    jpg = w.voc / "JPEGImages" / f"{VAL_IDS[0]}.jpg"
    p, img = _coco_dataset(w, lambda d: d["images"][0].update(file_name=str(jpg)))
    return Cell("labels", ["export", "--data", p, "--images", img, "--pseudo", w.inp / "pseudo.h5",
                           "--out", w.out / "c.json"], "instances.json", r"image \d+: file_name .* is an absolute path")


@cell("COCO JSON: file_name escaping --images with .. (issue 23)", "export")
def _coco_dotdot_name(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["images"][0].update(file_name=f"../JPEGImages/{VAL_IDS[0]}.jpg"))
    return Cell("labels", ["export", "--data", p, "--images", img, "--pseudo", w.inp / "pseudo.h5",
                           "--out", w.out / "c.json"], "instances.json", r"leaves the image folder")


@cell("COCO JSON: annotation id that is a string", "evaluate")
def _coco_str_ann_id(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d["annotations"][0].update(id="a1"))
    return Cell("labels", ["evaluate", "--data", p, "--images", img, "--predictions", w.inp / "preds.json",
                           "--out", w.out / "m.json"], "instances.json", r"annotation id 'a1' is not an integer")


@cell("COCO JSON: empty image list (issue 23)", "cues --points")
def _coco_no_images(w: Work) -> Cell:
    p, img = _coco_dataset(w, lambda d: d.update(images=[], annotations=[]))
    return Cell("labels", ["cues", "--data", p, "--images", img, "--points", w.voc / "points", "--out", w.out / "c.h5"],
                "instances.json", r"lists no image")


@cell("XML <size> that is not the image's (issue 23)", "wsss --from-gt")
def _xml_size_wrong(w: Work) -> Cell:
    xml = w.voc / "Annotations" / f"{TRAIN_IDS[1]}.xml"
    xml.write_text(xml.read_text().replace(f"<width>{SIZE}</width>", "<width>40</width>"))
    return Cell("labels", ["wsss", *w.data(), "--from-gt", "--out", w.out / "w.h5"], f"{TRAIN_IDS[1]}.xml",
                rf"<size> says 40x{SIZE} but the image {TRAIN_IDS[1]}.jpg is {SIZE}x{SIZE}$")


@cell("points folder missing", "cues --method points")
def _points_dir(w: Work) -> Cell:
    return Cell("labels", ["cues", *w.data(), "--points", w.root / "Peak_points", "--out", w.out / "c.h5"],
                "Peak_points", r"points folder not found")


@cell("mask missing for one image", "wsss --import")
def _mask_missing(w: Work) -> Cell:
    (w.inp / "masks" / f"{TRAIN_IDS[2]}.png").unlink()
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"],
                f"{TRAIN_IDS[2]}.png", r"mask not found")


@cell("store missing an image of the split", "transfer --wsss")
def _store_short(w: Work) -> Cell:
    (w.voc / "ImageSets/Segmentation/train2.txt").write_text("".join(i + "\n" for i in TRAIN_IDS + VAL_IDS))
    return Cell("labels", ["transfer", *w.data("train2"), "--cues", w.inp / "cues.h5", "--wsss", w.inp / "wsss.h5",
                           "--out", w.out / "p.h5"], "cues.h5", rf"1 of the 4 images of split 'train2' are not in this store")


@cell("merge: overlapping shards", "merge")
def _merge_overlap(w: Work) -> Cell:
    base = ["cues", *w.data()]
    for i in range(2):
        assert invoke("labels", [*base, "--shard", f"{i}/2", "--out", w.inp / f"s{i}.h5"]).exit_code == 0
    return Cell("labels", ["merge", w.inp / "s0.h5", w.inp / "s1.h5", w.inp / "s0.h5", "--out", w.out / "m.h5"],
                "s0.h5", r"overlapping shards")


@cell("missing run folder", "summary")
def _summary_missing(w: Work) -> Cell:
    return Cell("labels", ["summary", "--work", w.root / "work"], "report.json", r"file not found")


@cell("report.json of another kind (a list)", "summary")
def _summary_list(w: Work) -> Cell:
    work = w.root / "work"
    work.mkdir()
    (work / "report.json").write_text("[1, 2]")
    (work / "metrics.json").write_text("{}")
    return Cell("labels", ["summary", "--work", work], "report.json", r"expected a JSON object, got list")


@cell("output folder exists", "demo-data")
def _demo_exists(w: Work) -> Cell:
    return Cell("labels", ["demo-data", w.voc, "--images", "2", "--size", "32"], "voc", r"output exists")


# --- output paths that cannot be written -----------------------------------------------------
for _c in ("export", "report", "evaluate"):
    def _out_dir(w: Work, _c=_c) -> Cell:
        g, a = _argv(w, _c, w.data("val" if _c == "evaluate" else "train"))
        target = Path(a[a.index("--out") + 1])
        target.mkdir()
        (target / "keep.txt").write_text("mine")
        return Cell(g, a, target.name, r"is a folder: give the path of a file")

    cell("--out names an existing folder", _c)(_out_dir)

for _c in ("cues", "report --overlays", "fit"):
    def _out_in_file(w: Work, _c=_c) -> Cell:
        blocker = w.out / "blocker"
        blocker.write_text("a file")
        if _c == "report --overlays":
            g, a = _argv(w, "report", w.data())
            return Cell(g, [*a, "--overlays", blocker / "ov"], "blocker", r"a file of that name is in the way")
        g, a = _argv(w, _c, w.data())
        a[a.index("--out") + 1] = blocker / "x"
        return Cell(g, a, "blocker", r"a file of that name is in the way|: Not a directory$")

    cell("--out inside a file", _c, _NEEDS.get(_c))(_out_in_file)


# --- points files -------------------------------------------------------------------------
def _points_cell(w: Work, line: str, problem: str, prior: bool = False) -> Cell:
    p = w.voc / "points" / f"{TRAIN_IDS[1]}.txt"
    if prior:
        assert invoke("labels", ["cues", *w.data(), "--out", w.out / "cues.h5"]).exit_code == 0
    p.write_text(p.read_text() + line + "\n")
    n = len(p.read_text().splitlines())
    args = ["cues", *w.data(), "--method", "points", "--points", w.voc / "points", "--out", w.out / "cues.h5"]
    return Cell("labels", args + (["--force"] if prior else []), f"{TRAIN_IDS[1]}.txt",
                rf"line {n}: .*{problem}", prior=prior)


@cell("point outside the image", "cues --method points")
def _pt_outside(w: Work) -> Cell:
    return _points_cell(w, f"{SIZE} 3 0 1.0", rf"point \({SIZE}, 3\) is outside the {SIZE}x{SIZE} image")


@cell("point outside the image", "cues --method points --force over a good store")
def _pt_outside_prior(w: Work) -> Cell:
    return _points_cell(w, "3 -1 0 1.0", r"point \(3, -1\) is outside", prior=True)


@cell("negative class", "cues --method points")
def _pt_negative(w: Work) -> Cell:
    return _points_cell(w, "3 3 -1 1.0", r"class -1 outside 0..3")


@cell("class above the class count", "cues --method points")
def _pt_big(w: Work) -> Cell:
    return _points_cell(w, f"3 3 {NUM_CLASSES} 1.0", rf"class {NUM_CLASSES} outside 0..3")


@cell("non-numeric field", "cues --method points")
def _pt_text(w: Work) -> Cell:
    return _points_cell(w, "3 3 dog 1.0", r"non-numeric field 'dog'")


@cell("NaN field", "cues --method points")
def _pt_nan(w: Work) -> Cell:
    return _points_cell(w, "nan 3 0 1.0", r"not a finite number")


@cell("wrong field count", "cues --method points")
def _pt_fields(w: Work) -> Cell:
    return _points_cell(w, "3 3 0", r"expected 4 fields")


@cell("class above the class count", "fit --sup point", needs="bestie_cli.train_fit")
def _pt_fit(w: Work) -> Cell:
    for i in TRAIN_IDS:  # every file: whichever image the first batch draws is bad
        (w.voc / "points" / f"{i}.txt").write_text(f"3 3 {NUM_CLASSES + 5} 1.0\n")
    g, a = _argv(w, "fit", w.data())
    return Cell(g, [*a, "--sup", "point"], ".txt", rf"line 1: class {NUM_CLASSES + 5} outside 0..3")


@cell("binary points file", "cues --method points")
def _pt_binary(w: Work) -> Cell:
    p = w.voc / "points" / f"{TRAIN_IDS[0]}.txt"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    return Cell("labels", ["cues", *w.data(), "--out", w.out / "cues.h5"], f"{TRAIN_IDS[0]}.txt",
                r"not a text file")


# --- empty image-level label / no foreground: skip the image, count a warning ---------------
def _empty_label(w: Work, image_id: str) -> None:
    p = w.voc / "Annotations" / f"{image_id}.xml"
    text = p.read_text()
    head, rest = text.split("<object>", 1)
    tail = rest.rsplit("</object>", 1)[1]
    p.write_text(head + tail)


@cell("empty image-level label", "cues --method points")
def _empty_cues(w: Work) -> Cell:
    _empty_label(w, TRAIN_IDS[1])
    n = len((w.voc / "points" / f"{TRAIN_IDS[1]}.txt").read_text().splitlines())
    return Cell("labels", ["cues", *w.data(), "--out", w.out / "cues.h5"], out=w.out / "cues.h5",
                warn={"empty_label": 1, "cues_not_in_label": n})


@cell("empty image-level label", "wsss --from-gt")
def _empty_wsss(w: Work) -> Cell:
    _empty_label(w, TRAIN_IDS[0])
    return Cell("labels", ["wsss", *w.data(), "--from-gt", "--out", w.out / "wsss.h5"], out=w.out / "wsss.h5",
                warn={"no_foreground": 1})


@cell("empty image-level label", "transfer")
def _empty_transfer(w: Work) -> Cell:
    _empty_label(w, TRAIN_IDS[2])
    for args in (["cues", *w.data(), "--out", w.inp / "cues0.h5"],
                 ["wsss", *w.data(), "--from-gt", "--out", w.inp / "wsss0.h5"]):
        r = invoke("labels", args)
        assert r.exit_code == 0 and "empty_label x1" in r.output or "no_foreground x1" in r.output, r.output
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "cues0.h5", "--wsss", w.inp / "wsss0.h5",
                           "--min-area", MIN_AREA, "--out", w.out / "pseudo.h5"], out=w.out / "pseudo.h5",
                warn={"no_instance": 1})


@cell("empty image-level label", "wsss --import (mask has classes)")
def _empty_wsss_import(w: Work) -> Cell:
    _empty_label(w, TRAIN_IDS[0])
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"],
                f"{TRAIN_IDS[0]}.png", r"the image-level label does not list")


@cell("no foreground in the WSSS mask", "wsss --import")
def _nofg_import(w: Work) -> Cell:
    write_palette_png(w.inp / "masks" / f"{TRAIN_IDS[2]}.png", np.zeros((SIZE, SIZE), np.uint8))
    return Cell("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.out / "wsss.h5"],
                out=w.out / "wsss.h5", warn={"no_foreground": 1})


@cell("no foreground in the WSSS mask", "transfer")
def _nofg_transfer(w: Work) -> Cell:
    m = np.full((SIZE, SIZE), 255, np.uint8)
    m[:2] = 0
    write_palette_png(w.inp / "masks" / f"{TRAIN_IDS[0]}.png", m)
    r = invoke("labels", ["wsss", *w.data(), "--import", w.inp / "masks", "--out", w.inp / "wsss0.h5"])
    assert r.exit_code == 0 and "no_foreground x1" in r.output, r.output
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "cues.h5", "--wsss", w.inp / "wsss0.h5",
                           "--min-area", MIN_AREA, "--out", w.out / "pseudo.h5"], out=w.out / "pseudo.h5",
                warn={"no_instance": 1})


# --- stores of another stage / another format / not stores ----------------------------------
@cell("store of another stage", "transfer --cues wsss.h5")
def _stage_transfer(w: Work) -> Cell:
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "wsss.h5", "--wsss", w.inp / "wsss.h5",
                           "--out", w.out / "pseudo.h5"], "wsss.h5", r"this is a 'wsss' store, expected a 'cues' store")


@cell("store of another stage", "transfer --wsss pseudo.h5")
def _stage_transfer2(w: Work) -> Cell:
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "cues.h5", "--wsss", w.inp / "pseudo.h5",
                           "--out", w.out / "pseudo.h5"], "pseudo.h5", r"'pseudo' store, expected a 'wsss' store")


@cell("store of another stage", "export --pseudo cues.h5")
def _stage_export(w: Work) -> Cell:
    return Cell("labels", ["export", *w.data(), "--pseudo", w.inp / "cues.h5", "--out", w.out / "coco.json"],
                "cues.h5", r"'cues' store, expected a 'pseudo' store")


@cell("store of another stage", "report --pseudo wsss.h5")
def _stage_report(w: Work) -> Cell:
    return Cell("labels", ["report", *w.data(), "--pseudo", w.inp / "wsss.h5", "--out", w.out / "r.json"],
                "wsss.h5", r"'wsss' store, expected a 'pseudo' store")


@cell("store of another stage", "merge cues.h5 wsss.h5")
def _stage_merge(w: Work) -> Cell:
    return Cell("labels", ["merge", w.inp / "cues.h5", w.inp / "wsss.h5", "--out", w.out / "m.h5"],
                "wsss.h5", r"is a wsss store but .*cues.h5 is a cues store$")


@cell("store of another stage", "fit --pseudo cues.h5", needs="bestie_cli.train_fit")
def _stage_fit(w: Work) -> Cell:
    g, a = _argv(w, "fit", w.data())
    a[a.index("--pseudo") + 1] = w.inp / "cues.h5"
    return Cell(g, a, "cues.h5", r"'cues' store, expected a 'pseudo' store")


@cell("store of another stage", "transfer --out over a cues store")
def _stage_out(w: Work) -> Cell:
    import shutil

    shutil.copy(w.inp / "cues.h5", w.out / "pseudo.h5")
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "cues.h5", "--wsss", w.inp / "wsss.h5",
                           "--out", w.out / "pseudo.h5"], "pseudo.h5",
                r"it is a 'cues' store, not a 'pseudo' store\); rerun with --force")


def _set_format(path: Path, value) -> None:
    with h5py.File(path, "r+") as h5:
        h5.attrs["format"] = value


@cell("store of another format version", "transfer --cues")
def _format_transfer(w: Work) -> Cell:
    _set_format(w.inp / "cues.h5", 1)
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "cues.h5", "--wsss", w.inp / "wsss.h5",
                           "--out", w.out / "pseudo.h5"], "cues.h5", r"store format 1 is not supported \(expected 2\).*rerun the stage")


@cell("store of another format version", "export --pseudo")
def _format_export(w: Work) -> Cell:
    _set_format(w.inp / "pseudo.h5", 99)
    return Cell("labels", ["export", *w.data(), "--pseudo", w.inp / "pseudo.h5", "--out", w.out / "c.json"],
                "pseudo.h5", r"store format 99 is not supported")


@cell("store of another format version", "fit --wsss", needs="bestie_cli.train_fit")
def _format_fit(w: Work) -> Cell:
    _set_format(w.inp / "wsss.h5", 1)
    g, a = _argv(w, "fit", w.data())
    return Cell(g, a, "wsss.h5", r"store format 1 is not supported \(expected 2\).*rerun the stage")


@cell("not a store (random bytes)", "transfer --wsss")
def _junk_store(w: Work) -> Cell:
    (w.inp / "wsss.h5").write_bytes(bytes(range(256)) * 8)
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "cues.h5", "--wsss", w.inp / "wsss.h5",
                           "--out", w.out / "pseudo.h5"], "wsss.h5", r"not an HDF5 store")


@cell("not a store (HDF5 without attributes)", "export --pseudo")
def _bare_h5(w: Work) -> Cell:
    with h5py.File(w.inp / "bare.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    return Cell("labels", ["export", *w.data(), "--pseudo", w.inp / "bare.h5", "--out", w.out / "c.json"],
                "bare.h5", r"not a bestie store")


@cell("truncated store", "transfer --cues")
def _trunc_store(w: Work) -> Cell:
    truncate_file(w.inp / "cues.h5", 0.5)
    return Cell("labels", ["transfer", *w.data(), "--cues", w.inp / "cues.h5", "--wsss", w.inp / "wsss.h5",
                           "--out", w.out / "pseudo.h5"], "cues.h5",
                r"not an HDF5 store \(corrupt or another kind of file\)")


# --- checkpoints for another number of classes -------------------------------------------
@cell("checkpoint for another class count", "cues --method pam", needs="bestie_labels.classifier.maps")
def _ck_cues(w: Work) -> Cell:
    return Cell("labels", ["cues", *w.data(), "--method", "pam", "--checkpoint", w.ckpt / "pam3.pt",
                           "--out", w.out / "cues.h5"], "pam3.pt", r"checkpoint is for 3 classes .* dataset has 4")


@cell("checkpoint for another class count", "wsss --method cam", needs="bestie_labels.classifier.maps")
def _ck_wsss(w: Work) -> Cell:
    return Cell("labels", ["wsss", *w.data(), "--method", "cam", "--checkpoint", w.ckpt / "pam3.pt",
                           "--out", w.out / "wsss.h5"], "pam3.pt", r"checkpoint is for 3 classes")


@cell("checkpoint for another class count", "bestie-train evaluate", needs="bestie_cli.train_evaluate")
def _ck_eval(w: Work) -> Cell:
    return Cell("train", ["evaluate", "--checkpoint", w.ckpt / "model3.pt", *w.data("val"), "--out", w.out / "m.json"],
                "model3.pt", r"checkpoint is for 3 classes but the dataset has 4")


@cell("checkpoint for another class count", "bestie-train predict", needs="bestie_cli.train_predict")
def _ck_predict(w: Work) -> Cell:
    return Cell("train", ["predict", "--checkpoint", w.ckpt / "model3.pt", *w.data("val"), "--out", w.out / "p.json"],
                "model3.pt", r"checkpoint is for 3 classes but the dataset has 4")


@cell("checkpoint of the other kind", "bestie-train evaluate (a PAM checkpoint)", needs="bestie_cli.train_evaluate")
def _ck_kind(w: Work) -> Cell:
    if not (w.ckpt / "pam4.pt").exists():
        pytest.skip("no PAM checkpoint (classifier package missing)")
    return Cell("train", ["evaluate", "--checkpoint", w.ckpt / "pam4.pt", *w.data("val"), "--out", w.out / "m.json"],
                "pam4.pt", r"is a PAM classifier checkpoint of `bestie-labels train-pam`: not a bestie-train checkpoint")


@cell("checkpoint of the other kind", "cues --method pam (a bestie-train checkpoint)",
      needs="bestie_labels.classifier.maps")
def _ck_kind2(w: Work) -> Cell:
    return Cell("labels", ["cues", *w.data(), "--method", "pam", "--checkpoint", w.ckpt / "model4.pt",
                           "--out", w.out / "cues.h5"], "model4.pt", r"not a bestie PAM classifier checkpoint")


@cell("corrupt checkpoint", "bestie-train predict", needs="bestie_cli.train_predict")
def _ck_corrupt(w: Work) -> Cell:
    p = w.root / "model.pt"
    p.write_bytes((w.ckpt / "model4.pt").read_bytes()[:3000])
    return Cell("train", ["predict", "--checkpoint", p, *w.data("val"), "--out", w.out / "p.json"],
                "model.pt", r"cannot read checkpoint")


# --- predictions files --------------------------------------------------------------------
def _preds_cell(w: Work, edit: Callable[[list], None], problem: str, prior: bool = False) -> Cell:
    p = w.inp / "preds.json"
    if prior:
        r = invoke("labels", ["evaluate", *w.data("val"), "--predictions", p, "--out", w.out / "m.json"])
        assert r.exit_code == 0, r.output
    preds = json.loads(p.read_text())
    edit(preds)
    p.write_text(json.dumps(preds))
    return Cell("labels", ["evaluate", *w.data("val"), "--predictions", p, "--out", w.out / "m.json"],
                "preds.json", problem, prior=prior)


@cell("predictions: unknown image id", "evaluate")
def _pr_image(w: Work) -> Cell:
    return _preds_cell(w, lambda p: p[1].update(image_id=123), r"entry 1: image_id 123 is not in split 'val'")


@cell("predictions: unknown image id (over an earlier metrics file)", "evaluate")
def _pr_image_prior(w: Work) -> Cell:
    return _preds_cell(w, lambda p: p[0].update(image_id="2000_000004"), r"entry 0: image_id '2000_000004'",
                       prior=True)


@cell("predictions: unknown category id", "evaluate")
def _pr_cat(w: Work) -> Cell:
    return _preds_cell(w, lambda p: p[-1].update(category_id=0), rf"category_id 0 is not a category of the dataset \(1..{NUM_CLASSES}\)")


@cell("predictions: NaN score", "evaluate")
def _pr_nan(w: Work) -> Cell:
    return _preds_cell(w, lambda p: p[0].update(score=math.nan), r"entry 0: score nan is not a finite number")


@cell("predictions: malformed RLE counts", "evaluate")
def _pr_rle(w: Work) -> Cell:
    return _preds_cell(w, lambda p: p[0]["segmentation"].update(counts="\x7f!!"), r"entry 0: malformed compressed RLE")


@cell("predictions: RLE covering too few pixels", "evaluate")
def _pr_rle_short(w: Work) -> Cell:
    return _preds_cell(w, lambda p: p[0]["segmentation"].update(counts="42"), r"RLE counts cover 6 pixels, expected 32\*32 = 1024")


@cell("predictions: RLE of another size", "evaluate")
def _pr_rle_size(w: Work) -> Cell:
    return _preds_cell(w, lambda p: p[0]["segmentation"].update(size=[16, 64]), r"RLE size 16x64")


@cell("predictions: not JSON", "evaluate")
def _pr_json(w: Work) -> Cell:
    p = w.inp / "preds.json"
    p.write_text(p.read_text()[:-10])
    return Cell("labels", ["evaluate", *w.data("val"), "--predictions", p, "--out", w.out / "m.json"],
                "preds.json", r"not valid JSON")


# ----------------------------------------------------------------------------------------
# the test
# ----------------------------------------------------------------------------------------
def _work(tmp_path: Path, good: Path, ckpt: Path | None) -> Work:
    w = Work(root=tmp_path, voc=copy_tree(good / "voc", tmp_path / "voc"),
             inp=copy_tree(good / "in", tmp_path / "in"), out=tmp_path / "out", ckpt=ckpt)
    w.out.mkdir()
    return w


@pytest.mark.parametrize("key", [
    pytest.param(k, id=f"{k[0]} | {k[1]}",
                 marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[k])] if k in KNOWN_BUGS else [])
    for k in sorted(CELLS)])
def test_bad_input(key, good, tmp_path, request):
    build, needs = CELLS[key]
    if needs is not None and not _have(needs):
        pytest.skip(f"{needs} is not there yet")
    cmd = key[1]
    uses_ckpt = any(s in cmd for s in ("pam", "cam", "predict", "bestie-train", "checkpoint")) or cmd in _CKPT
    ckpt = request.getfixturevalue("checkpoints") if uses_ckpt else None
    w = _work(tmp_path, good, ckpt)
    c = build(w)
    before = snapshot(w.root)
    r = invoke(c.group, c.args)
    print("EXPECTED " + (f"exit 0, warnings {c.warn}" if c.warn else f"exit 1, names {c.file!r}, /{c.problem}/"))
    if c.warn:
        assert r.exit_code == 0, r.output
        assert "Traceback" not in r.output
        line = [ln for ln in r.output.splitlines() if "warnings:" in ln]
        assert len(line) == 1, r.output
        print(f"OBSERVED exit {r.exit_code}; {line[0].strip()}")  # shown by pytest -rA (the matrix table)
        for name, n in c.warn.items():
            assert f"{name} x{n}" in line[0], r.output
        from bestie_labels.store.file import Store

        with Store(c.out) as s:
            assert len(s) == len(s.split_ids) == len(TRAIN_IDS)
        after = snapshot(w.root)
        new = sorted(set(after) - set(before))
        assert new == [c.out.relative_to(w.root).as_posix()], new
        return
    print(f"OBSERVED exit {r.exit_code}; {r.output.strip().splitlines()[-1] if r.output.strip() else ''}")
    assert_one_line_error(r, c.file, c.problem)
    assert snapshot(w.root) == before, "the work folder changed"
    if c.prior:
        assert any(p.is_file() for p in w.out.iterdir())


def _cell_command(key: tuple[str, str]) -> str:
    """``"labels cues"`` / ``"train fit"``: the command a cell runs, from its name."""
    cmd = key[1].split()
    if cmd[0] == "bestie-train":
        return f"train {cmd[1]}"
    if cmd[0] in ("fit", "predict"):
        return f"train {cmd[0]}"
    if cmd[0] == "train-evaluate":
        return "train evaluate"
    return f"labels {cmd[0]}"


def test_matrix_covers_every_command():
    """Every ``bestie-labels`` / ``bestie-train`` command has cells (``pipeline`` only runs the
    other commands as subprocesses and passes their one-line errors through)."""
    import click

    from bestie_cli.labels import main as labels
    from bestie_cli.train import main as train

    ctx = click.Context(labels)
    commands = {f"labels {c}" for c in labels.list_commands(ctx)} | \
               {f"train {c}" for c in train.list_commands(click.Context(train))}
    covered = {_cell_command(k) for k in CELLS}
    assert commands - covered == {"labels pipeline"}, sorted(commands - covered)
    assert covered <= commands, sorted(covered - commands)
