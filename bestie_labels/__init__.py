"""bestie label stages: datasets, cues, WSSS masks, semantic knowledge transfer, stores, export."""

__version__ = "0.1.0"
