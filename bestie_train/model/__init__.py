"""The trainer's networks: Panoptic-DeepLab (ResNet, tiny backbones from
:mod:`bestie_labels.backbones`) and the official pose-HRNet form (``pose_hrnet.py``); release
files recognised in ``official.py``. Entry point: :func:`build_model`."""

from .panoptic import CONFIGS, DecoderConfig, PanopticDeepLab, build_model

__all__ = ["CONFIGS", "DecoderConfig", "PanopticDeepLab", "build_model"]
