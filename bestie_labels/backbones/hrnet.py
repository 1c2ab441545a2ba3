"""HRNet-W32 / W48 trunks in the pose-HRNet form of the official BESTIE network.

Module names follow HRNet's ImageNet classification files (``hrnet_w48-8ef0771d.pth``,
``hrnet_w32-36af842e.pth`` of the BESTIE release, or ``hrnetv2_w48_imagenet_pretrained.pth``),
so they load by name: ``conv1, bn1, conv2, bn2`` (two
stride-2 3x3 convs), ``layer1`` (4 Bottlenecks, 64 -> 256 channels), ``transition1``,
``stage2`` (1 module, 2 branches), ``transition2``, ``stage3`` (4 modules, 3 branches),
``transition3``, ``stage4`` (3 modules, 4 branches); every module has ``branches`` (4 BasicBlocks
per branch) and ``fuse_layers``. Branch widths are W, 2W, 4W, 8W.

As in the official BESTIE (pose-HRNet) network, the last module of stage 4 fuses into the
stride-4 branch only (``multi_scale_output=False``: its ``fuse_layers`` has one row), and the
trunk's output is that branch. The ImageNet files hold the three other rows and the
classification head (``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``);
none is built here and all are reported as ignored by
:func:`~bestie_labels.backbones.weights.load_pretrained` (see ``pretrained_ignore_prefixes``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import Bottleneck, init_conv_bn  # same names (conv1..bn3, downsample) and stride placement


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """conv (no bias, 'same' padding) -> BN [-> ReLU]: keys ``0.weight``, ``1.*``."""
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with an identity shortcut (HRNet branches keep their width)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class HighResolutionModule(nn.Module):
    """Parallel branches, then every output branch i sums all branches j brought to its
    resolution: ``j > i`` by 1x1 conv-BN + nearest upsampling, ``j < i`` by ``i - j`` stride-2
    3x3 conv-BN (ReLU between them), ``j == i`` as is (``fuse_layers[i][i]`` is None).

    ``forward(xs: list of (B, channels[k], H/2^k, W/2^k)) -> list of the same shapes`` (only the
    first ``outputs`` of them: the pose-HRNet's last module has ``outputs=1``).
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, outputs: int | None = None):
        super().__init__()
        n = len(channels)
        outputs = n if outputs is None else outputs
        self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(c) for _ in range(num_blocks)]) for c in channels)
        self.fuse_layers = None
        if n > 1:
            rows = []
            for i in range(outputs):
                row = []
                for j in range(n):
                    if j > i:
                        row.append(conv_bn(channels[j], channels[i], 1, relu=False))
                    elif j == i:
                        row.append(None)
                    else:
                        steps = [conv_bn(channels[j], channels[j], 3, 2) for _ in range(i - j - 1)]
                        steps.append(conv_bn(channels[j], channels[i], 3, 2, relu=False))
                        row.append(nn.Sequential(*steps))
                rows.append(nn.ModuleList(row))
            self.fuse_layers = nn.ModuleList(rows)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = None
            for j, x in enumerate(xs):
                if j == i:
                    t = x
                elif j > i:
                    # nearest to the exact size (= the official x2^(j-i) upsampling when sizes
                    # divide, and still valid for odd sizes)
                    t = F.interpolate(row[j](x), size=xs[i].shape[-2:], mode="nearest")
                else:
                    t = row[j](x)
                y = t if y is None else y + t
            out.append(self.relu(y))
        return out


def make_transition(pre: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
    """Branches kept from the previous stage get a 3x3 conv-BN-ReLU only if their width changes
    (else None); each new branch is made from the previous lowest-resolution branch by stride-2
    3x3 conv-BN-ReLU steps (keys ``transitionK.i.s.0.weight``)."""
    layers = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(conv_bn(pre[i], c, 3) if c != pre[i] else None)
        else:
            extra = i + 1 - len(pre)
            layers.append(nn.Sequential(*[conv_bn(pre[-1], c if s == extra - 1 else pre[-1], 3, 2)
                                          for s in range(extra)]))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    """HRNet trunk in the pose-HRNet form (the official BESTIE network without its heads).

    Args:
        width: 32 (HRNet-W32) or 48 (HRNet-W48); branch channels are width x (1, 2, 4, 8).
        num_modules: modules in stages 2, 3, 4 (official: 1, 4, 3).
        num_blocks: BasicBlocks per branch in every module (official: 4).

    Attributes:
        out_channels: ``{"res2": W}``, out_strides: ``{"res2": 4}`` (the stride-4 branch).
        pretrained_ignore_prefixes: keys of the ImageNet files that this form does not have.
    """

    def __init__(self, width: int = 32, num_modules: Sequence[int] = (1, 4, 3), num_blocks: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, downsample=down), *[Bottleneck(256, 64) for _ in range(3)])
        chans = [width * 2 ** k for k in range(4)]
        self.transition1 = make_transition([256], chans[:2])
        self.stage2 = nn.Sequential(*[HighResolutionModule(chans[:2], num_blocks) for _ in range(num_modules[0])])
        self.transition2 = make_transition(chans[:2], chans[:3])
        self.stage3 = nn.Sequential(*[HighResolutionModule(chans[:3], num_blocks) for _ in range(num_modules[1])])
        self.transition3 = make_transition(chans[:3], chans)
        last = num_modules[2] - 1
        self.stage4 = nn.Sequential(*[HighResolutionModule(chans, num_blocks, outputs=1 if m == last else None)
                                      for m in range(num_modules[2])])
        self.width = width
        self.out_channels = {"res2": width}
        self.out_strides = {"res2": 4}
        self.pretrained_ignore_prefixes = (
            "incre_modules.", "downsamp_modules.", "final_layer.", "classifier.",
            *(f"stage4.{last}.fuse_layers.{i}." for i in (1, 2, 3)))
        init_conv_bn(self)

    @staticmethod
    def _transition(layers: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, t in enumerate(layers):
            src = ys[i] if i < len(ys) else ys[-1]  # new branches grow from the lowest resolution
            out.append(src if t is None else t(src))
        return out

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x (B,3,H,W) float -> {"res2": (B, W, ceil(H/4), ceil(W/4))}``, the stride-4 branch
        after the last fusion."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        ys = self.stage2(self._transition(self.transition1, ys))
        ys = self.stage3(self._transition(self.transition2, ys))
        ys = self.stage4(self._transition(self.transition3, ys))
        return {"res2": ys[0]}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_features(x)


def hrnet_w32() -> HRNet:
    """HRNet-W32 (branches 32/64/128/256)."""
    return HRNet(32)


def hrnet_w48() -> HRNet:
    """HRNet-W48 (branches 48/96/192/384)."""
    return HRNet(48)
