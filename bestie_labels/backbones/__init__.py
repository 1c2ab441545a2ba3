"""Backbones shared by the classifier (bestie_labels.classifier) and the trainer (bestie_train.model).

Every backbone has ``forward_features(x (B,3,H,W) float) -> dict[str, (B,C_k,H/s_k,W/s_k)]``
and the attributes ``out_channels: dict[str, int]`` and ``out_strides: dict[str, int]``.
ResNets use torchvision's state-dict key layout and HRNets the official HRNet ImageNet
classification layout, so their ImageNet weights load from a local file with
:func:`bestie_labels.backbones.weights.load_pretrained`. Nothing is downloaded.

Modules are imported lazily by :func:`build_backbone` so importing this package stays cheap.
"""

from __future__ import annotations

BACKBONES = ("tiny", "resnet50", "resnet101", "hrnet_w32", "hrnet_w48")


def build_backbone(name: str, **kwargs):
    """Return a freshly initialised backbone ``nn.Module`` by name (see :data:`BACKBONES`).

    ``kwargs`` go to the constructor (e.g. ``replace_stride_with_dilation`` for ResNets).
    Raises ``BestieError`` for an unknown name.
    """
    from bestie_labels.core.errors import BestieError

    if name == "tiny":
        from .tiny import TinyBackbone

        return TinyBackbone(**kwargs)
    if name in ("resnet50", "resnet101"):
        from . import resnet

        return getattr(resnet, name)(**kwargs)
    if name in ("hrnet_w32", "hrnet_w48"):
        from . import hrnet

        return getattr(hrnet, name)(**kwargs)
    raise BestieError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
