"""VGG-16 trunk in the DRS / official PAM form, with torchvision's state-dict keys.

The trunk is ``features``, an ``nn.Sequential`` whose indices are those of torchvision's
``vgg16`` (``features.0`` ... ``features.28``), so a torchvision ImageNet checkpoint loads into
it by key. Differences from the ImageNet network (as in DRS and the official PAM classifier):

* the 4th max-pool (``features.23``) is 3x3 with stride 1 and padding 1 (no down-sampling);
* conv5 (``features.24/26/28``) is dilated by 2 (padding 2);
* there is no 5th max-pool and no fully connected ``classifier.*`` (those checkpoint keys are
  ignored when loading).

Output stride 8, 512 channels.
"""

from __future__ import annotations

import torch
from torch import nn

# Channels per conv; "M" = 2x2 max-pool stride 2, "N" = 3x3 max-pool stride 1 (pool4 of DRS).
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "N", 512, 512, 512)

#: torchvision indices of the 13 convolutions of ``vgg16.features``.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _make_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    n_conv = 0
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "N":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=1, padding=1))
        else:
            dil = 2 if n_conv >= 10 else 1  # conv5_x are the 11th..13th convolutions
            layers.append(nn.Conv2d(cin, v, kernel_size=3, padding=dil, dilation=dil))
            layers.append(nn.ReLU(inplace=True))
            cin = v
            n_conv += 1
    return nn.Sequential(*layers)


class VGG16Trunk(nn.Module):
    """``forward(x (B,3,H,W)) -> (B,512,ceil(H/8),ceil(W/8))`` feature map (after ReLU)."""

    out_channels = 512
    output_stride = 8

    def __init__(self) -> None:
        super().__init__()
        self.features = _make_features()
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
