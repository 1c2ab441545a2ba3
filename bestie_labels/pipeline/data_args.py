"""The dataset options each pipeline stage gets: a VOC root, a COCO JSON or a folder dataset.

Every stage command takes the dataset as ``--data PATH [--data-format F] [--images DIR]
--split NAME`` (:func:`bestie_cli.common.data_options`). The pipeline trains on split ``train``
of its dataset and evaluates on split ``val`` of the same one, except where a dataset has no
splits of its own: a COCO JSON *is* one split, so evaluation takes ``--val-data`` (the
validation JSON, with ``--val-images``); a folder dataset has no GT instances, so it is only
evaluated on a ``--val-data`` that has them, and otherwise not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BestieError
from ..datasets import FORMATS, detect_format


@dataclass(frozen=True)
class DataArgs:
    """The dataset arguments of the stage commands.

    Attributes:
        root: the training dataset's path (VOC root, COCO JSON, folder).
        kind: ``"voc" | "coco" | "folder"``.
        data: ``--data ROOT [--data-format F] [--images DIR]`` (no split).
        train: ``data`` + ``--split train [--labels FILE]``.
        val: evaluate's dataset arguments (with ``--split val``), or None when there is no
            validation data with GT instances (then the pipeline has no evaluate stages).
        inputs: the files whose change reruns every stage (split list, JSON, CSV, label file).
        open_train, open_val: the same two datasets as keywords of
            :func:`~bestie_labels.datasets.open_dataset` (``open_val`` None with ``val``), for
            the checks made before any stage runs.
    """

    root: str
    kind: str
    data: list
    train: list
    val: list | None
    inputs: list
    open_train: dict
    open_val: dict | None


def _kind(path: str, data_format: str) -> str:
    """The dataset kind; a path that does not exist yet is taken by its name (the preflight
    check, not the plan, says it is missing)."""
    if data_format:
        if data_format not in FORMATS:
            raise BestieError(f"unknown data format {data_format!r} (expected voc, coco or folder)")
        return data_format
    p = Path(path)
    if p.suffix.lower() == ".json":
        return "coco"
    return detect_format(p) if p.exists() else "voc"


def dataset_files(path: str, kind: str) -> list[str]:
    """The files of a dataset that list its images and labels (its Make dependencies)."""
    if kind == "coco":
        return [path]
    if kind == "folder":
        return [str(Path(path) / "labels.csv")]
    return []


def data_args(root: str, *, data_format: str = "", images: str = "", labels: str = "",
              val_data: str = "", val_images: str = "", generated: bool = False) -> DataArgs:
    """The :class:`DataArgs` of a pipeline on the dataset at ``root``.

    Args:
        root: VOC root, COCO instances JSON or folder with ``labels.csv``.
        data_format: ``voc`` / ``coco`` / ``folder``, or empty to detect it from ``root``.
        images: the COCO image folder.
        labels: a BESTIE image-level label file (VOC only; it lists the training images).
        val_data, val_images: another dataset to evaluate on (a COCO val JSON and its images).
        generated: ``root`` is the demo data, written by an earlier stage (not read here).

    Raises BestieError when ``root`` is no dataset (not for ``generated``).
    """
    kind = "voc" if generated else _kind(root, data_format)
    data = ["--data", root] + (["--data-format", data_format] if data_format else [])
    data += ["--images", images] if images else []
    train = [*data, "--split", "train"] + (["--labels", labels] if labels else [])
    if kind == "voc" and not labels:
        inputs = [str(Path(root) / "ImageSets" / "Segmentation" / "train.txt")]
    else:
        inputs = dataset_files(root, kind)
    inputs += [labels] if labels else []
    open_train = dict(path=root, split="train", data_format=data_format or None, images=images or None,
                      labels=labels or None)
    if val_data:
        val = ["--data", val_data] + (["--images", val_images] if val_images else []) + ["--split", "val"]
        open_val = dict(path=val_data, split="val", images=val_images or None)
    elif kind == "voc":
        val = [*data, "--split", "val"]
        open_val = dict(open_train, split="val", labels=None)
    elif kind == "coco":
        raise BestieError("a COCO JSON is one split: the pipeline evaluates on --val-data (the validation "
                          "instances JSON, e.g. instances_val2017.json) with --val-images", root)
    else:
        val = open_val = None  # a folder dataset has no GT instances to evaluate against
    return DataArgs(root=root, kind=kind, data=data, train=train, val=val, inputs=inputs, open_train=open_train,
                    open_val=open_val)
