"""A tiny label-stage run and its HTML report, shared by the HTML and browser tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bestie_labels.datasets import open_dataset
from bestie_labels.stages import run_cues, run_transfer, run_wsss
from store_helpers import edit_store

#: The image whose pseudo instances are all removed: recall 0, the worst of the split.
WORST = "2000_000005"


def drop_instances(arrays: dict) -> dict:
    """A pseudo image with no instance left."""
    h, w = arrays["instances"].shape
    return dict(instances=np.zeros((h, w), np.uint16), classes=np.zeros(0, np.int32),
                centers=np.zeros((0, 2), np.float32), scores=np.zeros(0, np.float32))


def tiny_run(demo_root: Path, work: Path):
    """Stores of the demo's train split (9 images of 64x64: WSSS from the GT, cues from the
    points, transfer), the pseudo instances of :data:`WORST` removed. Returns (dataset, work)."""
    ds = open_dataset(demo_root, split="train")
    run_wsss(ds, work / "wsss.h5", from_gt=True)
    run_cues(ds, work / "cues.h5", method="points")
    run_transfer(ds, work / "cues.h5", work / "wsss.h5", work / "pseudo.h5")
    edit_store(work / "pseudo.h5", WORST, drop_instances)
    return ds, work
