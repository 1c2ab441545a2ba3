"""The options of a ``fit`` run (:class:`FitOptions`) and the per-backbone defaults they resolve to.

Each field's ``metadata`` holds its command-line help and range (read by :mod:`bestie_cli.options`,
which builds the ``bestie-train fit`` options from it): a default or a help text lives here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bestie_labels.core.errors import BestieError
from bestie_labels.core.option_fields import NOT_AN_OPTION, device_option, option, seed_option, workers_option

#: Per-backbone defaults. ResNet/HRNet: the official BESTIE script values (Adam 5e-5, crop 416,
#: batch 16, 50k iterations, 2k warm-up, validation every 1k). tiny: trained from scratch on the
#: CPU, where the paper's 5e-5 barely moves in a few minutes. Measured on the default demo data
#: (180 train / 60 val images of 128x128, pseudo labels from GT points + GT class masks), batch 8,
#: crop 128, 600 iterations (about 4 CPU-minutes on one core): val mAP50 29.8 at lr 5e-5, 70.1 at
#: 2e-3, 72.6 at 5e-3; 2e-3 is the default (the margin to 5e-3 is within seed noise and the
#: lower rate is safer for the ablations).
#: ``recipe``: the augmentation of :mod:`bestie_train.augment` ("paper": the official loader's).
_PAPER = dict(lr=5e-5, crop=416, batch_size=16, iters=50000, warmup=2000, val_every=1000, recipe="paper")
DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": dict(lr=2e-3, crop=128, batch_size=8, iters=600, warmup=100, val_every=200, recipe="cpu"),
    "resnet50": dict(_PAPER),
    "resnet101": dict(_PAPER),
    "hrnet_w32": dict(_PAPER),
    "hrnet_w48": dict(_PAPER),
}
# Options that change the training trajectory: a resume must use the same ones (``iters`` may
# grow: a run, finished or not, is extended; the poly schedule then decays to the new total).
TRAJECTORY_KEYS = ("backbone", "crop", "batch_size", "lr", "warmup", "seed", "iag", "refine",
                   "cluster", "sup", "sigma", "scale", "pretrained", "world_size", "num_classes", "recipe",
                   "point_offsets")


@dataclass
class FitOptions:
    """Every option of a run (recorded in the checkpoints); ``None`` means the backbone default."""

    backbone: str = option("tiny", choices=tuple(DEFAULTS), show_default=True)
    iters: int | None = option(None, "Training iterations [default: tiny 600, others 50000].", min=1)
    epochs: int | None = option(None, "Train for this many epochs instead of --iters.", min=1)
    batch_size: int | None = option(
        None, "Global batch size, split across torchrun processes [default: tiny 8, others 16].", min=1)
    crop: int | None = option(None, "Training crop side [default: tiny 128, others 416].", min=8)
    lr: float | None = option(None, "Adam learning rate [default: tiny 2e-3, others 5e-5 (paper)].",
                              min=0, min_open=True)
    warmup: int | None = option(None, "Linear warm-up iterations [default: tiny 100, others 2000].", min=0)
    device: str = device_option()
    seed: int = seed_option()
    workers: int = workers_option()
    iag: bool = option(True, "Ablation: center/offset losses on every pixel.", flag="--no-iag")
    refine: bool = option(True, "Ablation: no online self-refinement.", flag="--no-refine")
    cluster: bool = option(True, "Ablation: no center clustering in refinement.", flag="--no-cluster")
    sup: str = option("cls", "Supervision: image-level labels or points (see --points).",
                      choices=("cls", "point"), show_default=True)
    sigma: float = field(default=6.0, metadata=NOT_AN_OPTION)
    scale: tuple = field(default=(0.7, 1.3), metadata=NOT_AN_OPTION)
    val_every: int | None = option(None, "Validation interval in iterations [default: tiny 200, others 1000].", min=1)
    val_flip: bool = option(False, "Flip test-time augmentation during validation.")
    log_every: int = option(10, "Write a metrics.jsonl line every N iterations.", min=1, show_default=True)
    ckpt_every: int | None = option(None, "Write last.pt every N iterations [default: --val-every].", min=1)
    pretrained: str | None = option(None, "Local ImageNet weights for the backbone.", path={})
    points: str | None = option(None, "--sup point: folder of <id>.txt point files 'x y cls conf' [default: the "
                                      "dataset's points/].", path={})
    # the cues store: run the transfer per training crop (official)
    cues: str | None = option(None, "The cues store --pseudo was made from: run the transfer on every training "
                                    "crop (official). Without it the full-image pseudo instances are cropped "
                                    "(e.g. --from-gt labels).", path={})
    recipe: str | None = option(None, "Augmentation [default: tiny cpu (uniform scale), others paper (official "
                                      "resize, scales 0.7..1.3 by 0.1, photometric distortion)].",
                                choices=("paper", "cpu"))
    point_offsets: str = option("centroid", "Instances centered on their point (point labels): offsets regress to "
                                            "the instance's centroid (official) or to the point itself.",
                                choices=("centroid", "point"), show_default=True)
    threads: int | None = option(None, "Torch CPU threads [default: 1 for the tiny backbone on the CPU, else "
                                       "torch's default].", min=1)
    amp: bool = option(True, "Disable mixed precision on CUDA.", flag="--no-amp")
    world_size: int = field(default=1, metadata=NOT_AN_OPTION)  # these three are set by fit itself
    num_classes: int = field(default=0, metadata=NOT_AN_OPTION)
    split: str = field(default="", metadata=NOT_AN_OPTION)

    def resolve(self, n_train: int) -> "FitOptions":
        """Fill backbone defaults; ``epochs`` becomes ``iters``."""
        if self.backbone not in DEFAULTS:
            raise BestieError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(DEFAULTS)}")
        if self.sup not in ("cls", "point"):
            raise BestieError(f"sup must be 'cls' or 'point', got {self.sup!r}")
        d = DEFAULTS[self.backbone]
        for k in ("batch_size", "crop", "lr", "warmup", "recipe"):
            if getattr(self, k) is None:
                setattr(self, k, d[k])
        if self.batch_size % self.world_size:
            raise BestieError(f"batch size {self.batch_size} is not a multiple of the {self.world_size} processes")
        if self.iters is not None and self.epochs is not None:
            raise BestieError("give --iters or --epochs, not both")
        if self.epochs is not None:
            per_rank = self.batch_size // self.world_size
            steps = (n_train // self.world_size) // per_rank
            if steps < 1:
                raise BestieError(f"the training split has {n_train} images: too few for batch size {self.batch_size}")
            self.iters = int(self.epochs) * steps
        if self.iters is None:
            self.iters = d["iters"]
        if self.iters < 1:
            raise BestieError(f"iterations must be >= 1, got {self.iters}")
        if self.val_every is None:
            self.val_every = min(d["val_every"], self.iters)
        if self.ckpt_every is None:
            self.ckpt_every = self.val_every
        self.warmup = min(int(self.warmup), self.iters)
        self.scale = tuple(float(s) for s in self.scale)
        return self
