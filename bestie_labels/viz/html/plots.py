"""Per-class plots of the summary pages (matplotlib, Agg), as PNG bytes.

The PNGs carry no time stamp, so the same numbers give the same bytes (and the report does not
rewrite them).
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np


def _figure(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * n + 1.5), 3.6))
    return plt, fig, ax


def _png(plt, fig, ax, names: Sequence[str], title: str, ylabel: str) -> bytes:
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def stacked_bars(names: Sequence[str], series: Mapping[str, Sequence[float]], title: str,
                 ylabel: str = "instances", colours: Mapping[str, str] | None = None) -> bytes:
    """Stacked bars: one bar per name, one segment per series (e.g. TP / FP / missed)."""
    plt, fig, ax = _figure(len(names))
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for label, values in series.items():
        v = np.asarray([0 if a is None else a for a in values], np.float64)
        ax.bar(x, v, bottom=bottom, label=label, color=(colours or {}).get(label))
        bottom += v
    return _png(plt, fig, ax, names, title, ylabel)


def grouped_bars(names: Sequence[str], series: Mapping[str, Sequence[float | None]], title: str,
                 ylabel: str = "%") -> bytes:
    """Side-by-side bars per name, one per series (e.g. precision, recall, WSSS IoU); None = no bar."""
    plt, fig, ax = _figure(len(names))
    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        v = np.asarray([np.nan if a is None else a for a in values], np.float64)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, v, width, label=label)
    ax.set_ylim(0, 100)
    return _png(plt, fig, ax, names, title, ylabel)
