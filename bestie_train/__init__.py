"""bestie trainer: the instance network, its training loop and inference.

Public API (see ``api.py``): :func:`load_model` and :func:`infer`.
"""

from .api import infer, load_model

__all__ = ["infer", "load_model"]
