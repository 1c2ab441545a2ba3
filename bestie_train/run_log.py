"""The run folder's metrics: ``metrics.jsonl`` rows (:class:`~bestie_labels.core.training.MetricsLog`)
and ``curves.png``.

A ``train`` row: ``{"kind": "train", "iter", "epoch", "lr", "total", "semantic",
"center_pseudo", "center_refined", "offset_pseudo", "offset_refined", "it_per_s"}``; a ``val``
row: ``{"kind": "val", "iter", "split", "mAP25", "mAP50", "mAP70", "mAP75", "coco_AP",
"coco_AP50", "num_predictions", "seconds", "best"}``.
"""

from __future__ import annotations

import os
from pathlib import Path

from bestie_labels.core.fileio import atomic_path
from bestie_labels.core.training import MetricsLog

LOSS_KEYS = ("total", "semantic", "center_pseudo", "center_refined", "offset_pseudo", "offset_refined")


def last_validation(out: str | os.PathLike, iteration: int) -> float | None:
    """The validation mAP50 of the weights at ``iteration`` (``last.pt``) in ``out/metrics.jsonl``,
    or None when that iteration was not validated."""
    rows = MetricsLog(Path(out) / "metrics.jsonl").read()
    vals = [r for r in rows if r.get("kind") == "val" and r.get("iter") == iteration]
    return vals[-1].get("mAP50") if vals else None


def val_row(it: int, split: str, metrics: dict, seconds: float) -> dict:
    """The ``val`` row of an :func:`~bestie_labels.evaluation.evaluate.evaluate_predictions`
    result (``best`` is added by the caller)."""
    return {"kind": "val", "iter": it, "split": split,
            **{k: metrics["voc"][k] for k in ("mAP25", "mAP50", "mAP70", "mAP75")},
            "coco_AP": metrics["coco"]["AP"], "coco_AP50": metrics["coco"]["AP50"],
            "num_predictions": metrics["num_predictions"], "seconds": round(seconds, 2)}


def plot_curves(rows: list[dict], path: Path) -> None:
    """Write ``curves.png``: loss terms (log scale) and validation mAP50 against iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val" and r.get("mAP50") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for k in LOSS_KEYS:
        pts = [(r["iter"], r[k]) for r in train if r.get(k) is not None and r[k] > 0]
        if pts:
            x, y = zip(*pts)
            ax1.plot(x, y, label=k, lw=1.2 if k == "total" else 0.9)
    ax1.set_yscale("log")
    ax1.set_xlabel("iteration")
    ax1.set_title("training losses (x lambda)")
    if train:
        ax1.legend(fontsize=7)
    if val:
        ax2.plot([r["iter"] for r in val], [r["mAP50"] for r in val], "o-", label="val mAP50")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("%")
    ax2.set_title("validation VOC mAP50")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.22)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
