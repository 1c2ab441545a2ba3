"""The trainer's network: backbones (from :mod:`bestie_labels.backbones`), the Panoptic-DeepLab
decoders and the semantic / center / offset heads. Entry point: :func:`build_model`."""

from .panoptic import CONFIGS, DecoderConfig, PanopticDeepLab, build_model

__all__ = ["CONFIGS", "DecoderConfig", "PanopticDeepLab", "build_model"]
