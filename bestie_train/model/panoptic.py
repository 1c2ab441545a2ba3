"""The Panoptic-DeepLab network used by BESTIE's trainer.

``backbone -> semantic decoder -> semantic head (C+1)`` and
``backbone -> instance decoder -> center head (C), offset head (2: dy, dx)``, all at stride 4,
then bilinearly upsampled to the input size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestie_labels.backbones import BACKBONES, build_backbone
from bestie_labels.errors import BestieError

from .decoder import ASPPDecoder, ConcatDecoder, resize
from .heads import Head


@dataclass(frozen=True)
class DecoderConfig:
    """Channel sizes of one backbone's decoders and heads.

    ``kind`` is ``"aspp"`` (ASPP on ``feature_key`` + fusion of ``low_level_keys``) or
    ``"concat"`` (HRNet: all branches concatenated at stride 4, see ``ConcatDecoder``).
    ``*_proj`` are the projected low-level channels, one per low-level key. ``separable``: fuse
    and head convs are 5x5 depthwise-separable (Panoptic-DeepLab), else plain 3x3.
    """

    kind: str = "aspp"
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
# (center 128, offset 32). HRNet: one stride-4 input, no ASPP. tiny: everything small for CPU.
CONFIGS: dict[str, DecoderConfig] = {
    "resnet50": DecoderConfig(),
    "resnet101": DecoderConfig(),
    "hrnet_w32": DecoderConfig(kind="concat"),
    "hrnet_w48": DecoderConfig(kind="concat"),
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
        if cfg.kind == "aspp":
            self.semantic_decoder = ASPPDecoder(ch, cfg.feature_key, cfg.low_level_keys, cfg.sem_proj,
                                                cfg.sem_aspp, cfg.sem_decoder, cfg.rates, cfg.dropout, cfg.separable)
            self.instance_decoder = ASPPDecoder(ch, cfg.feature_key, cfg.low_level_keys, cfg.ins_proj,
                                                cfg.ins_aspp, cfg.ins_decoder, cfg.rates, cfg.dropout, cfg.separable)
        elif cfg.kind == "concat":
            self.semantic_decoder = ConcatDecoder(ch, cfg.sem_decoder)
            self.instance_decoder = ConcatDecoder(ch, cfg.ins_decoder)
        else:
            raise ValueError(f"unknown decoder kind {cfg.kind!r}")
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


def build_model(backbone: str, num_classes: int, pretrained: str | None = None, verbose: bool = True) -> PanopticDeepLab:
    """Build the trainer's network.

    Args:
        backbone: ``"tiny" | "resnet50" | "resnet101" | "hrnet_w32" | "hrnet_w48"``.
        num_classes: C >= 1 foreground classes.
        pretrained: local state-dict file for the backbone (torchvision ResNet / official HRNet
            ImageNet layout); missing and unexpected keys are printed on stderr. Never downloads.
        verbose: print the load report.

    Returns:
        a :class:`PanopticDeepLab` in train mode; a ResNet backbone's ImageNet ``fc`` is
        removed (set to None) after loading, so every parameter is used by ``forward``.

    Raises:
        BestieError: unknown backbone, bad ``num_classes``, unreadable or mismatching weights.
    """
    if backbone not in BACKBONES:
        raise BestieError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if int(num_classes) < 1:
        raise BestieError(f"num_classes must be >= 1, got {num_classes}")
    net = build_backbone(backbone)
    report = None
    if pretrained is not None:
        from bestie_labels.backbones.weights import load_pretrained

        report = load_pretrained(net, pretrained, ignore_prefixes=getattr(net, "pretrained_ignore_prefixes", ()),
                                 verbose=verbose)
    if getattr(net, "fc", None) is not None:
        # the ImageNet classifier is never used here: drop it so that every parameter gets a
        # gradient (DistributedDataParallel refuses unused parameters) and checkpoints stay lean
        net.fc = None
    model = PanopticDeepLab(net, backbone, num_classes, CONFIGS[backbone])
    model.pretrained_report = report
    return model
