"""bestie trainer: the instance network, its training loop and inference.

Public API (see ``api.py``): :func:`load_model`, :func:`infer` (raw heads) and
:func:`predict_image` (instances).
"""

from .api import infer, load_model, predict_image

__all__ = ["infer", "load_model", "predict_image"]
