"""bestie label stages: datasets, cues, WSSS masks, semantic knowledge transfer, stores, export.

Public API (see ``api.py``): :func:`load_classifier` and :func:`activation_maps`.
"""

__version__ = "0.1.0"

from .api import activation_maps, load_classifier  # noqa: E402  (torch is imported lazily)

__all__ = ["activation_maps", "load_classifier"]
