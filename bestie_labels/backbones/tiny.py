"""A small conv-BN-ReLU backbone for CPU runs (demo data, tests).

Same interface as the big backbones: ``forward_features`` returns ``res2`` (stride 4),
``res3`` (8), ``res4`` (16) and ``res5`` (16, dilated convs, so the ASPP input keeps some
resolution on 128x128 crops). About 0.3 M parameters; no pretrained weights exist for it.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 conv (no bias) -> BN -> ReLU; keeps size at stride 1, halves it (rounded up) at stride 2."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """Four small stages.

    Args:
        width: channels of ``res2``; later stages use 2x, 4x and 4x of it.

    Attributes:
        out_channels: ``{"res2": w, "res3": 2w, "res4": 4w, "res5": 4w}`` (w = 16 by default).
        out_strides: ``{"res2": 4, "res3": 8, "res4": 16, "res5": 16}``.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn_relu(3, w, 2), conv_bn_relu(w, w, 2), conv_bn_relu(w, w))
        self.stage3 = nn.Sequential(conv_bn_relu(w, 2 * w, 2), conv_bn_relu(2 * w, 2 * w))
        self.stage4 = nn.Sequential(conv_bn_relu(2 * w, 4 * w, 2), conv_bn_relu(4 * w, 4 * w))
        self.stage5 = nn.Sequential(conv_bn_relu(4 * w, 4 * w, dilation=2), conv_bn_relu(4 * w, 4 * w, dilation=2))
        self.out_channels = {"res2": w, "res3": 2 * w, "res4": 4 * w, "res5": 4 * w}
        self.out_strides = {"res2": 4, "res3": 8, "res4": 16, "res5": 16}
        self.pretrained_ignore_prefixes = ()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x (B,3,H,W) float -> {res2 (B,w,H/4,W/4), res3 (B,2w,H/8,W/8), res4 (B,4w,H/16,W/16),
        res5 (B,4w,H/16,W/16)}`` (sizes rounded up)."""
        r2 = self.stem(x)
        r3 = self.stage3(r2)
        r4 = self.stage4(r3)
        return {"res2": r2, "res3": r3, "res4": r4, "res5": self.stage5(r4)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_features(x)
