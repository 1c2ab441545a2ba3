"""Image-level classifier with the peak attention module (PAM), instance cues, CAM WSSS.

* :func:`build_classifier` / :class:`PAMClassifier` (``model.py``), :class:`PAM` (``pam.py``);
* :func:`train_pam` (``train.py``; options ``train_options.py``, samples ``train_data.py``,
  image-level mAP ``image_ap.py``), checkpoints (``checkpoint.py``);
* :func:`load_classifier`, :func:`activation_maps` (``maps.py``);
* :func:`extract_peaks` (``peaks.py``);
* :func:`cam_to_mask` (``cam_wsss.py``).
"""

from .cam_wsss import DEFAULT_BG_THRESHOLD, cam_to_mask
from .checkpoint import load_checkpoint, load_pretrained, save_checkpoint
from .maps import activation_maps, load_classifier
from .model import BACKBONES, PAMClassifier, build_classifier
from .pam import PAM, pam_disabled, set_pam
from .peaks import extract_peaks
from .image_ap import average_precision, mean_average_precision
from .train import train_pam
from .train_options import DEFAULTS

__all__ = [
    "BACKBONES", "DEFAULTS", "DEFAULT_BG_THRESHOLD", "PAM", "PAMClassifier", "activation_maps",
    "average_precision", "build_classifier", "cam_to_mask", "extract_peaks",
    "load_checkpoint", "load_classifier", "load_pretrained", "mean_average_precision",
    "pam_disabled", "save_checkpoint", "set_pam", "train_pam",
]
