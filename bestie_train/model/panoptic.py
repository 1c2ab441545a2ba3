"""The trainer's networks and :func:`build_model`.

ResNet and tiny backbones: Panoptic-DeepLab, ``backbone -> semantic decoder -> semantic head
(C+1)`` and ``backbone -> instance decoder -> center head (C), offset head (2: dy, dx)``, all
at stride 4, then bilinearly upsampled to the input size (as the official ResNet form).
HRNet-W32/W48: the official pose-HRNet form (:class:`~bestie_train.model.pose_hrnet.PoseHRNet`,
heads on the stride-4 branch, no decoder), so the released checkpoints load as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestie_labels.backbones import BACKBONES, build_backbone
from bestie_labels.core.errors import BestieError

from .decoder import ASPPDecoder, resize
from .heads import Head


@dataclass(frozen=True)
class DecoderConfig:
    """Channel sizes of one backbone's decoders and heads.

    ASPP on ``feature_key`` + fusion of ``low_level_keys``. ``*_proj`` are the projected low-level channels, one per low-level key. ``separable``: fuse
    and head convs are 5x5 depthwise-separable (Panoptic-DeepLab), else plain 3x3.
    """

    feature_key: str = "res5"
    low_level_keys: tuple[str, ...] = ("res3", "res2")
    rates: tuple[int, ...] = (3, 6, 9)
    dropout: float = 0.5
    sem_aspp: int = 256
    sem_decoder: int = 256
    sem_proj: tuple[int, ...] = (64, 32)
    sem_head: int = 256
    ins_aspp: int = 256
    ins_decoder: int = 128
    ins_proj: tuple[int, ...] = (32, 16)
    center_head: int = 128
    offset_head: int = 32
    separable: bool = True


# ResNet: output stride 32, ASPP rates 3/6/9 (Panoptic-DeepLab); head widths as BESTIE
# (center 128, offset 32). tiny: everything small for CPU. (HRNet: see pose_hrnet.py.)
CONFIGS: dict[str, DecoderConfig] = {
    "resnet50": DecoderConfig(),
    "resnet101": DecoderConfig(),
    "tiny": DecoderConfig(rates=(2, 4, 6), dropout=0.1, sem_aspp=64, sem_decoder=64, sem_proj=(32, 16),
                          sem_head=64, ins_aspp=64, ins_decoder=32, ins_proj=(16, 8), center_head=32,
                          offset_head=16, separable=False),
}


class PanopticDeepLab(nn.Module):
    """Backbone + separate semantic and instance decoders + three heads.

    Attributes:
        backbone: the feature extractor (``forward_features``, ``out_channels``).
        num_classes: C, the number of foreground classes.
        backbone_name: one of :data:`bestie_labels.backbones.BACKBONES`.
        pretrained_report: the :class:`~bestie_labels.backbones.weights.LoadReport` when
            ImageNet weights were loaded, else None.
    """

    def __init__(self, backbone: nn.Module, backbone_name: str, num_classes: int, cfg: DecoderConfig):
        super().__init__()
        self.backbone = backbone
        self.backbone_name = backbone_name
        self.num_classes = int(num_classes)
        self.pretrained_report = None
        ch = backbone.out_channels
        self.semantic_decoder = ASPPDecoder(ch, cfg.feature_key, cfg.low_level_keys, cfg.sem_proj,
                                            cfg.sem_aspp, cfg.sem_decoder, cfg.rates, cfg.dropout, cfg.separable)
        self.instance_decoder = ASPPDecoder(ch, cfg.feature_key, cfg.low_level_keys, cfg.ins_proj,
                                            cfg.ins_aspp, cfg.ins_decoder, cfg.rates, cfg.dropout, cfg.separable)
        self.semantic_head = Head(cfg.sem_decoder, cfg.sem_head, self.num_classes + 1, cfg.separable)
        self.center_head = Head(cfg.ins_decoder, cfg.center_head, self.num_classes, cfg.separable)
        self.offset_head = Head(cfg.ins_decoder, cfg.offset_head, 2, cfg.separable)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predict at the input resolution.

        Args:
            x: ``(B, 3, H, W)`` float, normalised image batch (any H, W; multiples of 32 avoid
               rounding in the backbone).

        Returns:
            ``semantic (B, C+1, H, W)`` logits (channel 0 = background, k+1 = class k);
            ``center (B, C, H, W)`` raw class-wise center heatmap (regressed with MSE towards
            Gaussians of peak 1, no sigmoid); ``offset (B, 2, H, W)`` (dy, dx) in input pixels
            pointing from each pixel to its instance center. All float32 (or the autocast dtype).
        """
        size = x.shape[-2:]
        features = self.backbone.forward_features(x)
        sem = self.semantic_decoder(features)
        ins = self.instance_decoder(features)
        return {
            "semantic": resize(self.semantic_head(sem), size),
            "center": resize(self.center_head(ins), size),
            "offset": resize(self.offset_head(ins), size),
        }


def build_model(backbone: str, num_classes: int, pretrained: str | None = None,
                verbose: bool = True) -> nn.Module:
    """Build the trainer's network.

    Args:
        backbone: ``"tiny" | "resnet50" | "resnet101" | "hrnet_w32" | "hrnet_w48"``.
        num_classes: C >= 1 foreground classes.
        pretrained: local weights file, recognised from its keys
            (:func:`bestie_train.model.official.load_start_weights`): ImageNet weights of the
            backbone (torchvision ResNet / HRNet layout; missing and unexpected keys are
            printed on stderr), or a whole network (an official BESTIE release file, or a
            ``best.pt`` / ``last.pt`` of ours) for the same backbone and class count. Never
            downloads.
        verbose: print the load report.

    Returns:
        a :class:`PanopticDeepLab` (ResNet, tiny) or
        :class:`~bestie_train.model.pose_hrnet.PoseHRNet` (HRNet) in train mode; both have
        ``num_classes``, ``backbone_name`` and ``pretrained_report``. A ResNet backbone's
        ImageNet ``fc`` is removed, so every parameter is used by ``forward``.

    Raises:
        BestieError: unknown backbone, bad ``num_classes``, unreadable or mismatching weights.
    """
    if backbone not in BACKBONES:
        raise BestieError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if int(num_classes) < 1:
        raise BestieError(f"num_classes must be >= 1, got {num_classes}")
    if backbone.startswith("hrnet_w"):
        from .pose_hrnet import PoseHRNet

        model = PoseHRNet(int(backbone[len("hrnet_w"):]), num_classes)
    else:
        net = build_backbone(backbone)
        if getattr(net, "fc", None) is not None:
            # the ImageNet classifier is never used here: drop it so that every parameter gets a
            # gradient (DistributedDataParallel refuses unused parameters) and checkpoints stay lean
            net.fc = None
        model = PanopticDeepLab(net, backbone, num_classes, CONFIGS[backbone])
    if pretrained is not None:
        from .official import load_start_weights

        model.pretrained_report = load_start_weights(model, pretrained, verbose=verbose)
    return model
