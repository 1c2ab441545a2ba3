"""The official BESTIE network: pose-HRNet with three heads on its stride-4 branch.

``HRNet trunk (stride-4 branch, W channels) -> seg (C+1) | center (C) | offset (2)``, each head a
3x3 conv (W -> 256, bias), ReLU, 1x1 conv (bias); the outputs are bilinearly upsampled to the
input size. The module is the trunk itself plus the heads, so its state-dict keys are those of
the official checkpoints (``BESTIE_HRNet48_image_label.pt``: ``conv1.weight``, ...,
``stage4.2.fuse_layers.0.3.1.running_var``, ``seg.0.weight``, ``center.2.bias``,
``offset.2.weight``): they load with no missing or unexpected key.
"""

from __future__ import annotations

import torch
from torch import nn

from bestie_labels.backbones.hrnet import HRNet

from .decoder import resize

HEAD_CHANNELS = 256
#: state-dict prefixes of the three heads (not in an ImageNet file)
HEAD_PREFIXES = ("seg.", "center.", "offset.")


def _head(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv -> ReLU -> 1x1 conv (keys ``0.*`` and ``2.*``), weights ~ N(0, 0.001) and zero
    biases as the official initialisation, so every output starts near 0."""
    head = nn.Sequential(nn.Conv2d(cin, HEAD_CHANNELS, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(HEAD_CHANNELS, cout, 1))
    for m in (head[0], head[2]):
        nn.init.normal_(m.weight, std=0.001)
        nn.init.zeros_(m.bias)
    return head


class PoseHRNet(HRNet):
    """HRNet-W32/W48 with the ``seg``, ``center`` and ``offset`` heads.

    Attributes:
        num_classes: C foreground classes; backbone_name: ``"hrnet_w32" | "hrnet_w48"``;
        pretrained_report: the ImageNet / start weights load report, or None.
    """

    def __init__(self, width: int, num_classes: int):
        super().__init__(width)
        self.num_classes = int(num_classes)
        self.backbone_name = f"hrnet_w{width}"
        self.pretrained_report = None
        self.seg = _head(width, self.num_classes + 1)
        self.center = _head(width, self.num_classes)
        self.offset = _head(width, 2)
        self.pretrained_ignore_prefixes = (*self.pretrained_ignore_prefixes, *HEAD_PREFIXES)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x (B,3,H,W)`` normalised -> ``semantic (B,C+1,H,W)`` logits, ``center (B,C,H,W)``,
        ``offset (B,2,H,W)`` (dy, dx), as :class:`~bestie_train.model.panoptic.PanopticDeepLab`."""
        size = x.shape[-2:]
        f = self.forward_features(x)["res2"]
        return {"semantic": resize(self.seg(f), size), "center": resize(self.center(f), size),
                "offset": resize(self.offset(f), size)}
