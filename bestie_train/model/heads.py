"""Prediction heads: a 5x5 depthwise-separable (or 3x3) conv then a 1x1 conv to the outputs."""

from __future__ import annotations

import torch
from torch import nn

from .decoder import fuse_conv


class Head(nn.Module):
    """``forward(x (B, cin, h, w)) -> (B, cout, h, w)`` raw outputs (logits / regression).

    The last 1x1 conv starts with weights ~ N(0, 0.001) and zero bias, so every head's initial
    output is near 0 (for the center heatmap: "no center anywhere"; for offsets: 0 px).
    """

    def __init__(self, cin: int, hidden: int, cout: int, separable: bool = True):
        super().__init__()
        self.conv = fuse_conv(cin, hidden, separable)
        self.out = nn.Conv2d(hidden, cout, 1)
        nn.init.normal_(self.out.weight, std=0.001)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x))
