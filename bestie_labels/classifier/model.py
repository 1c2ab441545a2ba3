"""The image-level classifier with PAM (BESTIE section 3.3; official ``PAM/models/classifier.py``).

``backbone trunk -> [3x3 conv, PAM] x 3 -> 1x1 conv to C classes -> global average pooling``.
The activation maps are the output of the 1x1 conv; the image-level logits are their spatial
mean, trained with the multi-label soft-margin loss.

Backbones (``build_classifier(backbone=...)``):

* ``vgg16``: VGG-16 in the DRS form (:mod:`bestie_labels.backbones.vgg`), stride 8, three
  extra 512-channel convs, as in the official code.
* ``resnet50``: ResNet-50 from :mod:`bestie_labels.backbones.resnet` with layer4 dilated
  (output stride 16) and layer3 too when ``output_stride=8``, then the same extra 512-channel
  convs.
* ``tiny``: a small BatchNorm CNN (output stride 8, 96 channels, 96-channel extra convs) that
  trains in minutes on a CPU on the 128x128 demo images; for tests and the demo only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core.errors import BestieError
from .pam import PAM

BACKBONES = ("vgg16", "resnet50", "tiny")


class TinyTrunk(nn.Module):
    """``forward(x (B,3,H,W)) -> (B,96,H/8,W/8)``: a stride-2 stem and three 3x3 conv + BN +
    ReLU blocks with two 2x2 pools, the last conv dilated by 2 (receptive field about 50 px,
    100 px with the extra convs). About 1/8 of a VGG-16's cost per pixel... of a 112x112 input
    in 25 MFLOP, so a demo epoch takes seconds on a CPU."""

    out_channels = 96
    output_stride = 8

    def __init__(self) -> None:
        super().__init__()

        def block(cin, cout, stride=1, dil=1):
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=dil, dilation=dil, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(3, 24, stride=2), *block(24, 32), nn.MaxPool2d(2),
            *block(32, 64), nn.MaxPool2d(2),
            *block(64, 96, dil=2),
        )
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResNetTrunk(nn.Module):
    """A torchvision-layout ResNet (``conv1, bn1, layer1..4``) without pooling and ``fc``.

    ``forward(x) -> (B, 2048, H/os, W/os)``. The wrapped network is ``self.net`` so that a
    torchvision checkpoint loads into it by key (``fc.*`` is reported as unused).
    """

    out_channels = 2048

    def __init__(self, net: nn.Module, output_stride: int) -> None:
        super().__init__()
        # The ImageNet head is not used: drop its parameters (its checkpoint keys are reported).
        net.fc = nn.Identity()
        net.avgpool = nn.Identity()
        self.net = net
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))


def _resnet50_trunk(output_stride: int) -> ResNetTrunk:
    try:
        from ..backbones import resnet as rn
    except ImportError as e:
        raise BestieError(f"the resnet50 backbone is not available in this installation ({e})") from None
    if output_stride not in (8, 16):
        raise BestieError(f"resnet50 output stride must be 8 or 16, got {output_stride}")
    dil = [False, output_stride == 8, True]
    net = rn.resnet50(replace_stride_with_dilation=dil)
    return ResNetTrunk(net, output_stride)


def _trunk(backbone: str, output_stride: int) -> nn.Module:
    if backbone == "vgg16":
        from ..backbones.vgg import VGG16Trunk

        return VGG16Trunk()
    if backbone == "resnet50":
        return _resnet50_trunk(output_stride)
    if backbone == "tiny":
        return TinyTrunk()
    raise BestieError(f"unknown backbone '{backbone}' (choose from {', '.join(BACKBONES)})")


class PAMClassifier(nn.Module):
    """Backbone + three ``3x3 conv -> PAM`` blocks + ``1x1 conv`` to C classes.

    * ``cam(x (B,3,H,W)) -> (B,C,h,w)`` raw activation maps (before ReLU), ``h = H/stride``;
    * ``forward(x) -> (B,C)`` logits (global average of the maps);
    * ``parameter_groups()`` -> four lists: backbone weights, backbone biases, new weights, new
      biases (the official recipe trains them with lr x1, x2, x10, x20).

    Attributes ``backbone_name``, ``num_classes``, ``alpha``, ``pam`` record how it was built.
    """

    def __init__(self, backbone: str, num_classes: int, pam: bool = True, alpha: float = 0.7,
                 output_stride: int = 16) -> None:
        super().__init__()
        if num_classes < 1:
            raise BestieError(f"the classifier needs at least one class, got {num_classes}")
        self.backbone_name = backbone
        self.num_classes = int(num_classes)
        self.alpha = float(alpha)
        self.pam = bool(pam)
        self.backbone = _trunk(backbone, output_stride)
        cin = self.backbone.out_channels
        width = 96 if backbone == "tiny" else 512
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(cin if i == 0 else width, width, 3, padding=1), PAM(alpha, enabled=pam)]
        self.extra = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(width, num_classes, 1)
        for m in [*self.extra.modules(), self.classifier]:
            if isinstance(m, nn.Conv2d):
                # As the official code: N(0, sqrt(2 / (k * k * out_channels))), zero bias.
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                nn.init.zeros_(m.bias)

    @property
    def pretrained_module(self) -> nn.Module:
        """The module whose state-dict keys are those of the torchvision ImageNet checkpoint
        (``features.*`` for vgg16, ``conv1.*``/``layer*.*`` for resnet50)."""
        return self.backbone.net if isinstance(self.backbone, ResNetTrunk) else self.backbone

    @property
    def output_stride(self) -> int:
        return int(self.backbone.output_stride)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.extra(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam(x).mean(dim=(2, 3))

    def parameter_groups(self) -> tuple[list, list, list, list]:
        groups: tuple[list, list, list, list] = ([], [], [], [])
        for name, p in self.named_parameters():
            new = not name.startswith("backbone.")
            weight = not name.endswith("bias")
            groups[2 * new + (not weight)].append(p)
        return groups


def build_classifier(backbone: str, num_classes: int, pam: bool = True, alpha: float = 0.7,
                     output_stride: int = 16) -> PAMClassifier:
    """A randomly initialised :class:`PAMClassifier` (``output_stride`` is used by resnet50 only;
    vgg16 and tiny are stride 8)."""
    return PAMClassifier(backbone, num_classes, pam=pam, alpha=alpha, output_stride=output_stride)
