"""Atrous spatial pyramid pooling (DeepLabv3), as used by Panoptic-DeepLab's decoders."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """``kernel x kernel`` conv (no bias, 'same' padding) -> BN -> ReLU; keeps the spatial size."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Module):
    """Global average pool -> 1x1 conv -> ReLU, broadcast back to the input size.

    No BatchNorm here (as in Panoptic-DeepLab): a 1x1 map would break BN at batch size 1.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, cin, h, w) -> (B, cout, h, w)`` (constant over space)."""
        return self.relu(self.conv(self.pool(x))).expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """1x1 branch + three dilated 3x3 branches + image pooling, concatenated and projected.

    Args:
        cin: input channels (e.g. 2048 for ResNet ``res5``).
        cout: channels of every branch and of the output (256 in Panoptic-DeepLab).
        rates: dilations of the 3x3 branches ((3, 6, 9) at output stride 32).
        dropout: dropout after the projection.

    ``forward(x (B, cin, h, w)) -> (B, cout, h, w)``.
    """

    def __init__(self, cin: int, cout: int, rates: Sequence[int] = (3, 6, 9), dropout: float = 0.5):
        super().__init__()
        branches = [conv_bn_relu(cin, cout, 1)] + [conv_bn_relu(cin, cout, 3, r) for r in rates]
        branches.append(ImagePooling(cin, cout))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(cout * len(branches), cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))
