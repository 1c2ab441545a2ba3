"""Folder reader for custom data: images plus ``labels.csv`` and ``class_names.txt``.

``labels.csv`` has the header ``image,classes`` (an optional third column ``split`` selects the
rows of a split); ``image`` is a file name relative to the folder (an absolute path or one
leaving the folder with ``..`` is refused), ``classes`` the class names
of the image separated by ``;`` (empty for an image with no class). ``class_names.txt`` lists
one class per line in index order. There are no ground-truth instances.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import BestieError
from .base import Dataset, Record
from .coco_checks import file_name_problem
from .voc import _image_size, read_class_names


@dataclass
class FolderDataset(Dataset):
    """Images with image-level labels only (``load_gt`` raises :class:`BestieError`)."""



def open_folder(root: str | os.PathLike, split: str = "train") -> FolderDataset:
    """Open the folder ``root``; ``split`` filters rows when the CSV has a ``split`` column.

    Without that column the folder has no splits: every image is returned under the split name
    ``"all"``, whatever ``split`` says, so that no image appears under two split names."""
    root = Path(root)
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        raise BestieError("labels.csv not found", csv_path)
    names_path = root / "class_names.txt"
    if not names_path.is_file():
        raise BestieError("class_names.txt not found (one class name per line)", names_path)
    class_names = read_class_names(names_path)
    index = {n: i for i, n in enumerate(class_names)}

    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise BestieError("not UTF-8 text", csv_path) from None
    except csv.Error as e:
        raise BestieError(f"malformed CSV ({e})", csv_path) from None
    if not rows:
        raise BestieError("empty file (expected the header 'image,classes')", csv_path)
    header = [h.strip() for h in rows[0]]
    if header[:2] != ["image", "classes"] or header[2:] not in ([], ["split"]):
        raise BestieError(f"line 1: expected the header 'image,classes[,split]', got {','.join(header)!r}",
                          csv_path)
    has_split = len(header) == 3

    records, seen = [], set()
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise BestieError(f"line {n}: expected {len(header)} columns, got {len(row)}", csv_path)
        if has_split and row[2].strip() != split:
            continue
        name = row[0].strip()
        lab = np.zeros(len(class_names), bool)
        for c in (c.strip() for c in row[1].split(";")):
            if not c:
                continue
            if c not in index:
                raise BestieError(f"line {n}: unknown class {c!r} (not in class_names.txt)", csv_path)
            lab[index[c]] = True
        problem = file_name_problem(name, "image", "the dataset folder")
        if problem:
            raise BestieError(f"line {n}: {problem}", csv_path)
        path = root / name
        if not path.is_file():
            raise BestieError(f"image on line {n} of labels.csv not found", path)
        stem = Path(name).stem
        if stem in seen:
            raise BestieError(f"line {n}: a second image named {stem}", csv_path)
        seen.add(stem)
        h, w = _image_size(path)
        records.append(Record(image_id=stem, file_name=str(path.resolve()), height=h, width=w,
                              labels=lab))
    if not records:
        raise BestieError(f"no image in split {split!r}" if has_split else "no image listed", csv_path)
    return FolderDataset(root=root.resolve(), split=split if has_split else "all", class_names=class_names,
                         records=records, kind="folder", has_splits=has_split)
