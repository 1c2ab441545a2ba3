"""Panoptic-DeepLab decoders: ASPP + top-down fusion of low-level features (ResNet, tiny).

Each decoder maps the backbone's feature dict to one ``(B, channels, H/4, W/4)`` map; the model
has two of them (semantic and instance), as in Panoptic-DeepLab.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .aspp import ASPP, conv_bn_relu


def separable_conv(cin: int, cout: int, kernel: int = 5) -> nn.Sequential:
    """Depthwise ``kernel x kernel`` conv -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU (size kept)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def fuse_conv(cin: int, cout: int, separable: bool = True) -> nn.Sequential:
    """The decoders' and heads' fusion conv: 5x5 depthwise-separable (Panoptic-DeepLab) or, for
    CPU-sized models, a plain 3x3 conv-BN-ReLU (depthwise convs are slow to train on CPU)."""
    return separable_conv(cin, cout, 5) if separable else conv_bn_relu(cin, cout, 3)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, h, w)`` to ``(B, C, *size)`` (no-op when already that size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ASPPDecoder(nn.Module):
    """ASPP on the deepest feature, then for each low-level feature (deep to shallow): project it
    with 1x1 conv-BN-ReLU, upsample the running map to its size, concatenate, fuse with a 5x5
    depthwise-separable conv (or a 3x3 conv when ``separable`` is False).

    Args:
        in_channels: backbone ``out_channels`` dict.
        feature_key: ASPP input (``"res5"``).
        low_level_keys: e.g. ``("res3", "res2")`` (strides 8 and 4).
        low_level_project: projected channels per low-level key, e.g. ``(64, 32)``.
        aspp_channels, decoder_channels, rates, dropout: see :class:`ASPP`.
        separable: fuse with 5x5 depthwise-separable convs (else plain 3x3, see :func:`fuse_conv`).

    ``forward(features) -> (B, decoder_channels, h_last, w_last)`` at the stride of the last
    low-level key (4).
    """

    def __init__(self, in_channels: dict[str, int], feature_key: str, low_level_keys: Sequence[str],
                 low_level_project: Sequence[int], aspp_channels: int, decoder_channels: int,
                 rates: Sequence[int], dropout: float = 0.5, separable: bool = True):
        super().__init__()
        if len(low_level_keys) != len(low_level_project):
            raise ValueError("low_level_keys and low_level_project differ in length")
        self.feature_key = feature_key
        self.low_level_keys = tuple(low_level_keys)
        self.aspp = ASPP(in_channels[feature_key], aspp_channels, rates, dropout)
        self.project = nn.ModuleList(conv_bn_relu(in_channels[k], c, 1) for k, c in zip(low_level_keys, low_level_project))
        fuse, cin = [], aspp_channels
        for c in low_level_project:
            fuse.append(fuse_conv(cin + c, decoder_channels, separable))
            cin = decoder_channels
        self.fuse = nn.ModuleList(fuse)
        self.out_channels = decoder_channels

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.aspp(features[self.feature_key])
        for key, project, fuse in zip(self.low_level_keys, self.project, self.fuse):
            low = project(features[key])
            x = fuse(torch.cat([resize(x, low.shape[-2:]), low], dim=1))
        return x
