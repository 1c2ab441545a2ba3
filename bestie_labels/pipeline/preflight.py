"""Checks of a pipeline's data made before anything long runs.

A pipeline that fails at ``fit`` after an hour of label stages, because the split has fewer
images than a batch or the validation split has no GT, wastes the hour. :func:`preflight` opens
the datasets the stages will open and refuses, in one line naming the file, what would fail
later:

* the training split and the evaluation split exist and list images;
* the training split has at least ``min_images`` images (the batch size of ``fit``);
* image-level labels (``--sup cls``): some training image has a class; point labels: the
  point folder exists;
* the evaluation split has GT instances (``evaluate`` scores against them).

The training split without GT (a folder dataset, VOC train_aug's SBD images) is no error:
``report`` then counts pseudo instances only, and a note says so.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import BestieError
from ..datasets import open_dataset


def preflight(d, *, sup: str, min_images: int, points_dir: str = "") -> list[str]:
    """Check the datasets of :class:`.data_args.DataArgs` ``d``; return notes for the log.

    Args:
        d: the pipeline's dataset arguments.
        sup: ``"cls"`` or ``"point"``.
        min_images: the fewest training images ``fit`` can take (its batch size).
        points_dir: the point-label folder for ``sup == "point"`` (empty: ``<root>/points``).

    Raises BestieError (one line, naming the file) on the problems the module docstring lists.
    """
    notes = []
    train = open_dataset(**d.open_train)
    if len(train) < min_images:
        raise BestieError(f"the training split '{train.split}' has {len(train)} image(s), fewer than fit's batch "
                          f"size {min_images}: add images or give a smaller --batch-size", d.root)
    if sup == "cls" and not any(r.labels.any() for r in train.records):
        raise BestieError(f"no image of the training split '{train.split}' has an image-level label", d.root)
    if sup == "point":
        points = Path(points_dir or Path(d.root) / "points")
        if not points.is_dir():
            raise BestieError("point-label folder not found (give --points-dir)", points)
    with_gt = len(train.records_with_gt())
    if with_gt < len(train):
        notes.append(f"report: {len(train) - with_gt} of {len(train)} training images have no GT instances; "
                     "their pseudo labels are counted but not scored")
    if d.open_val is None:
        notes.append("evaluate: no validation data with GT instances (a folder dataset; give --val-data): "
                     "the model is trained but not scored")
        return notes
    val = open_dataset(**d.open_val)
    if not val.records_with_gt():
        raise BestieError(f"the evaluation split '{val.split}' has no GT instances to score against",
                          d.open_val["path"])
    return notes


def check_pipeline_data(cfg, min_images: int) -> list[str]:
    """:func:`preflight` of a :class:`~bestie_labels.pipeline.plan.PipelineConfig`'s datasets;
    nothing to check for the demo data, which its first stage generates."""
    if cfg.is_demo:
        return []
    from .data_args import data_args

    d = data_args(cfg.dataset, data_format=cfg.data_format, images=cfg.images, labels=cfg.labels,
                  val_data=cfg.val_data, val_images=cfg.val_images)
    return preflight(d, sup=cfg.sup, min_images=min_images, points_dir=cfg.points_dir)
