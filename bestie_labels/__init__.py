"""bestie label stages: datasets, cues, WSSS masks, semantic knowledge transfer, stores, export.

Public API (see ``api.py``): :func:`load_classifier` and :func:`activation_maps`.
"""

from .core.version import __version__  # noqa: F401  (re-exported)
from .api import activation_maps, load_classifier  # torch is imported lazily

__all__ = ["activation_maps", "load_classifier"]
