"""The boundary network: a frozen classifier trunk and IRN's class-boundary branch.

IRN freezes its backbone and trains only small branches on its multi-level features. Here the
backbone is the trunk of the PAM classifier the seeds come from (``tiny`` on the demo, ``vgg16``
or ``resnet50`` at paper scale): it already knows the dataset's classes, and the CPU demo has no
ImageNet weights. Each resolution level of the trunk (the last feature map at each stride >= 2)
goes through ``1x1 conv -> GroupNorm -> ReLU`` to 32 channels and is resized to stride 4; the
concatenation goes through a ``1x1 conv`` to one boundary logit (IRN's ``fc_edge1..6``).

``forward(x (B, 3, H, W)) -> (B, ceil(H/4), ceil(W/4))`` boundary logits.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..classifier.model import PAMClassifier, ResNetTrunk

#: Stride of the boundary map (IRN: 4).
STRIDE = 4
_WIDTH = 32


def trunk_stages(trunk: nn.Module) -> list[nn.Module]:
    """The trunk as a list of modules applied in order (ResNet: stem, layer1..4; else ``features``)."""
    if isinstance(trunk, ResNetTrunk):
        n = trunk.net
        return [n.conv1, n.bn1, n.relu, n.maxpool, n.layer1, n.layer2, n.layer3, n.layer4]
    return list(trunk.features)


def multilevel_features(stages: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """The last feature map at each spatial size reached by ``stages`` (input excluded), finest first."""
    feats: list[torch.Tensor] = []
    for m in stages:
        x = m(x)
        if feats and x.shape[-2:] == feats[-1].shape[-2:]:
            feats[-1] = x
        else:
            feats.append(x)
    return feats


class BoundaryNet(nn.Module):
    """Frozen classifier trunk + trainable boundary head (see the module docstring).

    Args:
        classifier: a trained :class:`PAMClassifier`; its trunk is kept frozen (eval mode, no
            gradients) and is part of this module's state dict.
        image_size: a probe size used to find the trunk's levels and their channels.
    """

    def __init__(self, classifier: PAMClassifier, image_size: int = 64) -> None:
        super().__init__()
        self.trunk = classifier.backbone
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self._stages = trunk_stages(self.trunk)
        with torch.no_grad():
            self.trunk.eval()
            probe = multilevel_features(self._stages, torch.zeros(1, 3, image_size, image_size))
        # Levels of stride >= 2 (VGG's full-resolution conv1 is left out, as IRN starts at 4).
        self.levels = [i for i, f in enumerate(probe) if f.shape[-1] <= image_size // 2]
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(probe[i].shape[1], _WIDTH, 1, bias=False), nn.GroupNorm(4, _WIDTH),
                          nn.ReLU(inplace=True)) for i in self.levels)
        self.out = nn.Conv2d(_WIDTH * len(self.levels), 1, 1)

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()  # frozen, BatchNorm statistics included
        return self

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.heads.parameters(), *self.out.parameters()]

    def head_state_dict(self) -> dict:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("trunk.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = ((x.shape[-2] + STRIDE - 1) // STRIDE, (x.shape[-1] + STRIDE - 1) // STRIDE)
        with torch.no_grad():
            feats = multilevel_features(self._stages, x)
        ys = [F.interpolate(h(feats[i].detach()), size=size, mode="bilinear", align_corners=False)
              for i, h in zip(self.levels, self.heads)]
        return self.out(torch.cat(ys, 1))[:, 0]
