"""Builders and checks shared by the reliability tests (bad input, fuzz, kill).

Everything here works on tiny VOC trees (4 images of 32x32 from the demo generator: 3 train,
1 val) so that a test can copy one, damage one file, run a real command and compare the folder
before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from bestie_labels.pipeline.demo_data import make_demo_dataset

#: Image ids of the tiny tree (train = the first three, val = the last).
TRAIN_IDS = ["2000_000001", "2000_000002", "2000_000003"]
VAL_IDS = ["2000_000004"]
SIZE = 32
NUM_CLASSES = 4


def make_tiny_tree(dst: str | os.PathLike, n_images: int = 4, size: int = SIZE) -> Path:
    """A demo VOC tree of ``n_images`` images of ``size`` px (75% train), seed 0."""
    return make_demo_dataset(dst, n_images=n_images, size=size, seed=0)


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """``shutil.copytree`` (session fixtures are shared: damage a copy, never the original)."""
    shutil.copytree(src, dst)
    return Path(dst)


def snapshot(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256 of the bytes}`` of every file under ``folder`` (dirs as ``/``)."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_dir():
            out[rel + "/"] = ""
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def invoke(group: str, args) -> "click.testing.Result":  # noqa: F821
    """Run ``bestie-labels ARGS`` (group ``labels``) or ``bestie-train ARGS`` in-process."""
    if group == "labels":
        from bestie_cli.labels import main
    else:
        from bestie_cli.train import main
    return CliRunner().invoke(main, [os.fspath(a) for a in args])


def error_line(result) -> str:
    """The one ``Error: ...`` line of a failed command (asserting there is exactly one)."""
    # Progress bars (tqdm) redraw with "\r" and ANSI cursor moves on stderr: split on those.
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.output)
    lines = [ln for ln in re.split(r"[\r\n]", text) if ln.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def assert_one_line_error(result, file_name: str, problem: str) -> str:
    """Exit code non-zero, no traceback, one ``Error:`` line naming ``file_name`` and matching
    the regular expression ``problem``. Returns that line."""
    out = result.output
    assert result.exit_code != 0, out
    assert "Traceback" not in out, out
    # An uncaught exception inside CliRunner shows as result.exception with exit code 1.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    line = error_line(result)
    assert file_name in line, f"{file_name!r} not named in {line!r}"
    assert re.search(problem, line), f"{problem!r} not in {line!r}"
    return line


# ----------------------------------------------------------------------------------------
# damaging files
# ----------------------------------------------------------------------------------------
def truncate_file(path: str | os.PathLike, keep: float = 0.5) -> None:
    """Cut ``path`` to ``keep`` of its bytes."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: max(1, int(len(data) * keep))])


def zero_tail(path: str | os.PathLike, keep: float = 0.5) -> None:
    """Zero the bytes of ``path`` after ``keep`` of them, keeping its size (a download cut short
    into a pre-allocated file): the dataset fingerprint, which holds file sizes, does not change,
    so stores made before still match and the damaged image itself is what gets reported."""
    data = bytearray(Path(path).read_bytes())
    cut = max(1, int(len(data) * keep))
    data[cut:] = bytes(len(data) - cut)
    Path(path).write_bytes(bytes(data))


def write_rgb_png(path: str | os.PathLike, arr: np.ndarray) -> None:
    Image.fromarray(np.asarray(arr, np.uint8), mode="RGB").save(path)


def write_palette_png(path: str | os.PathLike, arr: np.ndarray) -> None:
    from bestie_labels.core.fileio import write_index_png

    write_index_png(path, np.asarray(arr, np.uint8))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``[(type, payload), ...]`` of a PNG (no CRC check)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i + 8 <= len(data):
        n, t = struct.unpack(">I4s", data[i:i + 8])
        out.append((t, data[i + 8:i + 8 + n]))
        i += 12 + n
    return out


def build_png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG from ``(type, payload)`` chunks with correct CRCs."""
    out = [b"\x89PNG\r\n\x1a\n"]
    for t, payload in chunks:
        out.append(struct.pack(">I", len(payload)) + t + payload
                   + struct.pack(">I", zlib.crc32(t + payload) & 0xFFFFFFFF))
    return b"".join(out)


def console_script(name: str) -> str:
    """The path of a console script (``bestie-labels``) installed next to ``sys.executable``."""
    return os.fspath(Path(sys.executable).with_name(name))


# ----------------------------------------------------------------------------------------
# tiny checkpoints, built through the libraries (no training)
# ----------------------------------------------------------------------------------------
def make_pam_checkpoint(path: str | os.PathLike, class_names, size: int = SIZE, seed: int = 0) -> Path:
    """An untrained ``tiny`` PAM classifier saved in the ``train-pam`` checkpoint format."""
    import torch

    from bestie_labels.classifier.checkpoint import FORMAT, VERSION, save_checkpoint
    from bestie_labels.classifier.model import build_classifier

    torch.manual_seed(seed)
    m = build_classifier("tiny", len(class_names), pam=True)
    save_checkpoint(path, {"format": FORMAT, "version": VERSION, "model": m.state_dict(),
                           "options": {"backbone": "tiny", "pam": True, "alpha": 0.7, "crop_size": size,
                                       "test_size": size, "num_classes": len(class_names)},
                           "class_names": list(class_names), "epoch": 1, "history": []})
    return Path(path)


def make_train_checkpoint(path: str | os.PathLike, class_names, seed: int = 0) -> Path:
    """An untrained ``tiny`` instance network saved in the ``bestie-train`` checkpoint format."""
    import torch

    from bestie_train.checkpoint import save_checkpoint
    from bestie_train.model import build_model

    torch.manual_seed(seed)
    m = build_model("tiny", len(class_names), pretrained=None)
    save_checkpoint(path, {"model": m.state_dict(), "class_names": list(class_names),
                           "options": {"backbone": "tiny"}, "iteration": 1,
                           "best": {"metric": None, "iteration": None}})
    return Path(path)


def make_good_inputs(base: str | os.PathLike, min_area: str = "4") -> tuple[Path, Path]:
    """A tiny tree under ``base/voc`` and its good train stores ``base/in/{cues,wsss,pseudo}.h5``
    (cues from the demo points, WSSS from GT). Returns ``(tree, inputs folder)``."""
    base = Path(base)
    tree = make_tiny_tree(base / "voc")
    inp = base / "in"
    inp.mkdir()
    data = ["--data", tree, "--split", "train"]
    for args in (["cues", *data, "--out", inp / "cues.h5"],
                 ["wsss", *data, "--from-gt", "--out", inp / "wsss.h5"],
                 ["transfer", *data, "--cues", inp / "cues.h5", "--wsss", inp / "wsss.h5",
                  "--min-area", min_area, "--out", inp / "pseudo.h5"]):
        r = invoke("labels", args)
        assert r.exit_code == 0, r.output
    assert "warnings" not in r.output, r.output  # every train image has pseudo instances
    return tree, inp


def work_copy(good: Path, dst: Path) -> Path:
    """``dst`` with a fresh copy of ``good``'s tree (``voc/``) and inputs (``in/``) and an empty
    ``out/``: what each test of the reliability matrices starts from."""
    copy_tree(good / "voc", dst / "voc")
    copy_tree(good / "in", dst / "in")
    (dst / "out").mkdir()
    return dst


def make_evil_checkpoint(path: str | os.PathLike, marker: str | os.PathLike, disguise: dict | None = None) -> Path:
    """A ``torch.save`` file that runs ``touch MARKER`` when unpickled without ``weights_only``,
    dressed as ``disguise`` (e.g. a PAM checkpoint's keys) around the payload."""
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {os.fspath(marker)}",))

    obj = dict(disguise or {})
    obj["model"] = Payload()
    torch.save(obj, path)
    return Path(path)


def gt_results(ds, score: float = 0.9) -> list[dict]:
    """A COCO results list of the GT instances of every image of ``ds`` (the dataset's own ids:
    1..C for the tiny trees), each with ``score``: what a perfect model would write."""
    from bestie_labels.evaluation.coco_ap import encode_masks

    ids = ds.category_map()
    res = []
    for rec in ds.records:
        gt = ds.load_gt(rec)
        for rle, cid in zip(encode_masks(gt.masks), ids.to_ids(gt.classes)):
            res.append({"image_id": rec.coco_id, "category_id": int(cid), "score": score,
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return res
