"""ResNet-50/101 with torchvision's module names, so torchvision ImageNet state dicts load as is.

Key layout (``state_dict()``): ``conv1``, ``bn1``, ``layer1..layer4`` of Bottleneck blocks
(``conv1/bn1/conv2/bn2/conv3/bn3`` and, in the first block of a stage, ``downsample.0`` conv
and ``downsample.1`` BN), ``fc``. The stride sits on the 3x3 conv (ResNet v1.5, as torchvision).
``fc`` exists only so that checkpoints load; :meth:`ResNet.forward_features` never uses it, and
users that only need features may set ``fc = None`` after loading (the trainer's model does).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def init_conv_bn(module: nn.Module) -> None:
    """He (fan-out) initialisation of every convolution and unit BatchNorm of ``module``, as
    torchvision's ResNet and the official HRNet start from (before any pretrained weights)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand (x4), plus identity or projection."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Bottleneck ResNet trunk.

    Args:
        layers: blocks per stage, ``[3, 4, 6, 3]`` (ResNet-50) or ``[3, 4, 23, 3]`` (ResNet-101).
        replace_stride_with_dilation: three bools for layer2..layer4, as torchvision: a True stage
            keeps its input resolution and dilates its 3x3 convs instead of striding.
        num_classes: size of the (unused by features) ``fc`` layer; 1000 matches ImageNet files.

    Attributes:
        out_channels: ``{"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}``.
        out_strides: ``{"res2": 4, "res3": 8, "res4": 16, "res5": 32}`` (smaller with dilation).
    """

    def __init__(self, layers: Sequence[int], replace_stride_with_dilation: Sequence[bool] | None = None,
                 num_classes: int = 1000):
        super().__init__()
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation needs 3 booleans (layer2, layer3, layer4)")
        self.inplanes = 64
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        self.pretrained_ignore_prefixes = ("fc.",)

        strides, s = {}, 4
        for key, dil in zip(("res3", "res4", "res5"), replace_stride_with_dilation):
            s = s if dil else s * 2
            strides[key] = s
        self.out_strides = {"res2": 4, **strides}
        self.out_channels = {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}

        init_conv_bn(self)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        # as torchvision: the first block of a dilated stage still uses the previous dilation
        blocks_ = [Bottleneck(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * Bottleneck.expansion
        blocks_ += [Bottleneck(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*blocks_)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x (B,3,H,W) float -> {res2 (B,256,H/4,W/4), res3 (B,512,H/8), res4 (B,1024,H/16),
        res5 (B,2048,H/32)}`` (strides as in :attr:`out_strides`; sizes rounded up)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        r2 = self.layer1(x)
        r3 = self.layer2(r2)
        r4 = self.layer3(r3)
        r5 = self.layer4(r4)
        return {"res2": r2, "res3": r3, "res4": r4, "res5": r5}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(B, num_classes)`` (kept for completeness; features use forward_features)."""
        if self.fc is None:
            raise RuntimeError("this ResNet's fc was removed (feature extractor only)")
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)["res5"]), 1))


def resnet50(replace_stride_with_dilation: Sequence[bool] | None = None, num_classes: int = 1000) -> ResNet:
    """ResNet-50 (blocks 3, 4, 6, 3); 320 state-dict entries like torchvision's ``resnet50``."""
    return ResNet([3, 4, 6, 3], replace_stride_with_dilation, num_classes)


def resnet101(replace_stride_with_dilation: Sequence[bool] | None = None, num_classes: int = 1000) -> ResNet:
    """ResNet-101 (blocks 3, 4, 23, 3), torchvision ``resnet101`` key layout."""
    return ResNet([3, 4, 23, 3], replace_stride_with_dilation, num_classes)
