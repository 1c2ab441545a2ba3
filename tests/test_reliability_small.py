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
    from bestie_labels.core.safe_load import _first_line

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


# ----------------------------------------------------------------------------------------
# new cases of the same kinds (issue 23: "try 20 new cases")
# ----------------------------------------------------------------------------------------
def test_png_named_jpg_is_read_and_empty_image_named(work, tmp_path):
    """The content decides: a PNG saved under .jpg is a good image (it was called a truncated
    JPEG); a 0-byte image is called empty."""
    from PIL import Image

    from bestie_labels.core.fileio import read_image

    jpg = work / "voc" / "JPEGImages" / f"{TRAIN_IDS[0]}.jpg"
    ref = read_image(jpg)
    Image.fromarray(ref).save(tmp_path / "x.png")
    jpg.write_bytes((tmp_path / "x.png").read_bytes())
    assert (read_image(jpg) == ref).all()
    r = invoke("labels", ["wsss", *_data(work), "--from-gt", "--out", work / "out" / "w.h5"])
    assert r.exit_code == 0, r.output
    jpg.write_bytes(b"")
    r = invoke("labels", ["cues", *_data(work), "--method", "pam", "--checkpoint",
                          make_pam_checkpoint(work / "in" / "pam.pt", (work / "voc" / "class_names.txt").read_text().split()),
                          "--out", work / "out" / "c.h5"])
    assert_one_line_error(r, f"{TRAIN_IDS[0]}.jpg", r"empty file \(0 bytes\), not an image")


def test_image_header_claiming_a_huge_size_is_one_line(tmp_path):
    """A PNG whose header says 65535x65535 (a decompression bomb): OpenCV raises, not returns None."""
    import struct
    import zlib

    from badinput_helpers import build_png
    from bestie_labels.core.errors import BestieError
    from bestie_labels.core.fileio import read_image

    ihdr = struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0)
    p = tmp_path / "bomb.png"
    p.write_bytes(build_png([(b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\0" * 100)), (b"IEND", b"")]))
    with pytest.raises(BestieError, match="cannot decode image"):
        read_image(p)


@pytest.mark.parametrize("ext,mode", [("gif", "P"), ("png", "RGBA"), ("jpg", "L"), ("png", "I;16"), ("jpg", "CMYK"),
                                      ("webp", "RGB"), ("tif", "RGB")])
def test_other_image_kinds_read_as_rgb(ext, mode, tmp_path):
    """Images a custom dataset may hold, not written by the tools: (H, W, 3) uint8 of their size."""
    import numpy as np
    from PIL import Image

    from bestie_labels.core.fileio import read_image

    a = (np.random.RandomState(0).rand(20, 30, 3) * 255).astype(np.uint8)
    im = Image.fromarray(a)
    im = Image.fromarray(a[..., 0].astype(np.uint16) * 200) if mode == "I;16" else im.convert(mode)
    im.save(tmp_path / f"x.{ext}")
    out = read_image(tmp_path / f"x.{ext}")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode == "RGBA":
        assert (out == a).all()


@pytest.mark.parametrize("tag", [0, 9, "damaged"])
def test_invalid_or_damaged_exif_orientation_reads_unturned(tag, tmp_path):
    """As PIL's exif_transpose: an orientation outside 1..8, or an EXIF block cut short, leaves
    the image as stored."""
    import numpy as np
    from PIL import Image

    from bestie_labels.core.fileio import read_image

    a = np.zeros((10, 20, 3), np.uint8)
    ex = Image.Exif()
    ex[0x0112] = 6 if tag == "damaged" else tag
    raw = ex.tobytes()
    Image.fromarray(a).save(tmp_path / "x.png", exif=raw[:12] if tag == "damaged" else raw)
    assert read_image(tmp_path / "x.png").shape == (10, 20, 3)


@pytest.mark.parametrize("damage", ["sha256 an int", "a list", "not JSON", "entry a string"])
def test_damaged_registry_is_foreign_and_force_replaces(damage, work):
    """A registry edited by hand or cut: the file counts as foreign (an entry whose sha256 is not
    a list crashed with a TypeError, with or without --force), and --force replaces it."""
    out = work / "out" / "r.json"
    argv = ["report", *_data(work), "--pseudo", work / "in" / "pseudo.h5", "--out", out]
    assert invoke("labels", argv).exit_code == 0
    reg = out.parent / ".bestie-outputs.json"
    reg.write_text({"sha256 an int": json.dumps({"r.json": {"command": "bestie-labels report", "sha256": 5}}),
                    "a list": "[1, 2]", "not JSON": "\x00{zz", "entry a string": '{"r.json": "x"}'}[damage])
    before = snapshot(work)
    assert_one_line_error(invoke("labels", argv), "r.json", r"exists and was not written by")
    assert snapshot(work) == before
    r = invoke("labels", [*argv, "--force"])
    assert r.exit_code == 0, r.output
    assert invoke("labels", argv).exit_code == 0  # recorded again as its own


@pytest.mark.parametrize("name,problem", [("../x.jpg", r"image '\.\./x\.jpg' leaves the image folder"),
                                          ("ABS", r"image .* is an absolute path")])
def test_folder_dataset_image_outside_the_folder(name, problem, work):
    """labels.csv naming an image outside its folder (it was read: an input a command does not
    protect), as a COCO file_name."""
    import shutil

    root = work / "folder"
    root.mkdir()
    src = work / "voc" / "JPEGImages" / f"{TRAIN_IDS[0]}.jpg"
    shutil.copy(src, work / "x.jpg")
    name = str(work / "x.jpg") if name == "ABS" else name
    names = (work / "voc" / "class_names.txt").read_text().split()
    (root / "class_names.txt").write_text("\n".join(names) + "\n")
    (root / "labels.csv").write_text(f"image,classes\n{name},{names[0]}\n")
    r = invoke("labels", ["report", "--data", root, "--pseudo", work / "in" / "pseudo.h5"])
    assert_one_line_error(r, "labels.csv", rf"line 2: {problem}")


def test_degenerate_coco_polygons_are_dropped_as_detectron2_does(tmp_path):
    """A polygon of 4 numbers (pycocotools would read a box), of 5 or 3 numbers is dropped,
    an annotation left without one is skipped, with one warning naming the file and the first
    skipped annotation; the others are kept whole. A NaN is still refused."""
    from bestie_labels.datasets.coco_checks import check_annotations
    from bestie_labels.core.errors import BestieError

    ok = [2, 2, 20, 2, 20, 20]
    data = {"images": [{"id": 7, "file_name": "a.jpg", "height": 32, "width": 32}],
            "annotations": [{"id": 1, "image_id": 7, "segmentation": [[1, 1, 9, 9]]},
                            {"id": 2, "image_id": 7, "segmentation": [ok, [1, 1, 5, 5, 9]]},
                            {"id": 3, "image_id": 7, "segmentation": [[1, 2, 3]]},
                            {"id": 4, "image_id": 7, "segmentation": [ok]}]}
    path = tmp_path / "instances.json"
    with pytest.warns(UserWarning, match=r"instances\.json: dropped 3 polygon\(s\).*2 annotation\(s\) left without a "
                                         r"polygon are skipped \(first: annotation 1\)"):
        check_annotations(data, path)
    assert [a["id"] for a in data["annotations"]] == [2, 4]
    assert data["annotations"][0]["segmentation"] == [ok]
    data["annotations"][1]["segmentation"] = [[1, 1, float("nan"), 5, 9, 9]]
    with pytest.raises(BestieError, match=r"annotation 4: polygon has a non-finite coordinate"):
        check_annotations(data, path)
