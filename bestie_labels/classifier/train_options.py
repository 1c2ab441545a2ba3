"""The options of a ``train-pam`` run (:class:`PamOptions`) and the per-backbone recipe defaults.

Each field's ``metadata`` holds its command-line help and range (read by :mod:`bestie_cli.options`,
which builds the ``bestie-labels train-pam`` options from it): a default or a help text lives
here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..core.errors import BestieError
from ..core.option_fields import NOT_AN_OPTION, device_option, option, seed_option, workers_option
from .model import BACKBONES

#: Recipe defaults per backbone (None in a ``train_pam`` argument means "use these").
DEFAULTS: dict[str, dict[str, Any]] = {
    "vgg16": dict(epochs=15, batch_size=5, lr=1e-3, input_size=384, crop_size=321, hue=0.1,
                  lr_mult=(1.0, 2.0, 10.0, 20.0), alpha=0.7, test_scale=1.0),
    "resnet50": dict(epochs=15, batch_size=5, lr=1e-3, input_size=384, crop_size=321, hue=0.1,
                     lr_mult=(1.0, 2.0, 10.0, 20.0), alpha=0.7, test_scale=1.0),
    # The tiny network trains from scratch: every layer is new, so one lr for all (the x10/x20
    # multipliers make the new layers diverge), and no hue jitter (the demo classes differ by
    # colour family). From scratch, PAM with alpha 0.7 keeps too little of each channel to
    # learn (val mAP 0.60 vs 0.98 with alpha 0.4 on the demo); at inference the image is
    # upscaled to twice the crop size (224) so that the stride-8 maps separate neighbouring
    # objects. test_size (shorter side at inference) = test_scale x crop_size.
    "tiny": dict(epochs=16, batch_size=8, lr=5e-2, input_size=128, crop_size=112, hue=0.0,
                 lr_mult=(1.0, 1.0, 1.0, 1.0), alpha=0.4, test_scale=2.0),
}


@dataclass
class PamOptions:
    """Every option of a ``train_pam`` run; ``None`` means the backbone's :data:`DEFAULTS`."""

    backbone: str = option("vgg16", "vgg16 (official), resnet50, or tiny (a small CNN for the CPU demo and tests).",
                           choices=("vgg16", "resnet50", "tiny"), show_default=True)
    epochs: int | None = option(None, "Epochs [vgg16/resnet50: 15, tiny: 16]; lr /10 at 1/3 and 2/3 of the run.",
                                min=1)
    batch_size: int | None = option(None, "Batch size [vgg16/resnet50: 5, tiny: 8].", min=1)
    lr: float | None = option(None, "Base lr [vgg16/resnet50: 1e-3 with x2 backbone biases, x10 new layers, x20 "
                                    "their biases; tiny: 5e-2 for all layers].")
    alpha: float | None = option(None, "PAM controller value [0.7 as the paper; tiny: 0.4, which trains from "
                                       "scratch].", min=0, max=1)
    pam: bool = option(True, "Train a plain CAM classifier (no PAM) for comparison.", flag="--no-pam")
    pretrained: str | None = option(None, "Backbone ImageNet weights in torchvision's key layout (e.g. "
                                          "vgg16-397923af.pth). Never downloaded.", path=dict(dir_okay=False))
    input_size: int | None = option(None, "Shorter image side before cropping [vgg16/resnet50: 384, tiny: 128].",
                                    min=8)
    crop_size: int | None = option(None, "Random square crop for training; also the shorter side at inference "
                                         "[321, tiny: 112].", min=8)
    device: str = device_option()
    seed: int = seed_option()
    workers: int = workers_option()
    output_stride: int = field(default=16, metadata=NOT_AN_OPTION)

    def resolve(self) -> "PamOptions":
        """A copy with the backbone's defaults in place of ``None``; refuses bad values."""
        if self.backbone not in BACKBONES:
            raise BestieError(f"unknown backbone '{self.backbone}' (choose from {', '.join(BACKBONES)})")
        d = DEFAULTS[self.backbone]
        r = replace(self, **{k: d[k] for k in ("epochs", "batch_size", "lr", "input_size", "crop_size", "alpha")
                             if getattr(self, k) is None})
        r.epochs, r.batch_size, r.lr = int(r.epochs), int(r.batch_size), float(r.lr)
        r.input_size, r.crop_size, r.alpha = int(r.input_size), int(r.crop_size), float(r.alpha)
        if r.epochs < 1 or r.batch_size < 1 or r.lr <= 0 or r.crop_size < 8 or r.input_size < 8:
            raise BestieError("epochs, batch size, lr, input and crop size must be positive")
        return r
