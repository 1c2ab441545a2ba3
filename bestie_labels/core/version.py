"""The version recorded in stores, exports and the demo marker (``bestie_labels.__version__``)."""

__version__ = "0.1.0"
