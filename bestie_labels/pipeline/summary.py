"""The final table of a pipeline run: pseudo-label quality, instance mAP, COCO AP, stage times."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import BestieError
from ..core.fileio import read_json, write_json


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def build_summary(work: str | os.PathLike) -> dict:
    """Collect ``report.json``, ``metrics.json`` (best.pt), ``metrics_last.json`` (last.pt)
    and ``stage_times.json`` of a run folder (the metrics when present: a pipeline without
    validation GT has none, and its mAP figures are None).

    Returns ``{"pseudo_labels": {...}, "voc": {...}, "coco": {...}, "voc_last": {...},
    "coco_last": {...}, "checkpoints": {...}, "stage_seconds": {...}}``; ``voc``/``coco`` are
    best.pt's, which was chosen on the same split it is scored on (``checkpoints`` says so).
    """
    work = Path(work)
    report = read_json(work / "report.json")
    # no metrics.json: a pipeline without validation GT (a folder dataset) has no evaluate stage
    metrics = read_json(work / "metrics.json") if (work / "metrics.json").is_file() else {}
    for name, obj in (("report.json", report), ("metrics.json", metrics)):
        if not isinstance(obj, dict):
            raise BestieError(f"expected a JSON object, got {type(obj).__name__}", work / name)
    times = read_json(work / "stage_times.json") if (work / "stage_times.json").is_file() else {}
    total = report.get("total", report)
    pseudo = {k: total.get(k) for k in ("num_pseudo", "tp", "num_gt")}
    # report.json holds percent, like the mAP figures.
    for k in ("precision", "recall"):
        pseudo[k] = None if total.get(k) is None else round(total[k], 1)
    # The class masks' mIoU when the report was made with --wsss (the pipeline's is).
    pseudo["wsss_miou"] = _get(report, "wsss", "mIoU")
    # Where the GT instances were lost (report's ``lost``: with the cues and WSSS stores at hand).
    if isinstance(report.get("lost"), dict) and isinstance(report["lost"].get("total"), dict):
        pseudo["lost"] = report["lost"]["total"]
    last_path = work / "metrics_last.json"
    last = read_json(last_path) if last_path.is_file() else {}
    if not isinstance(last, dict):
        raise BestieError(f"expected a JSON object, got {type(last).__name__}", last_path)
    return {
        "pseudo_labels": pseudo,
        "voc": _voc(metrics),
        "coco": _coco(metrics),
        "voc_last": _voc(last),
        "coco_last": _coco(last),
        "checkpoints": {"voc/coco": "best.pt: the validation-best checkpoint, chosen on this same split "
                                    "(optimistic)", "voc_last/coco_last": "last.pt: the final weights, no choice"},
        "stage_seconds": times,
        "html": {k: os.fspath(p) for k, p in html_reports(work).items()},
    }


#: The HTML reports of a run folder: ``report --html`` and ``evaluate --html`` (the pipeline's).
HTML_REPORTS = {"labels": "report/index.html", "predictions": "evaluate/index.html"}


def html_reports(work: str | os.PathLike) -> dict[str, Path]:
    """``{kind: path}`` of the HTML reports the run folder holds."""
    return {k: Path(work) / rel for k, rel in HTML_REPORTS.items() if (Path(work) / rel).is_file()}


def _voc(metrics: dict) -> dict:
    return {k: _get(metrics, "voc", k) for k in ("mAP25", "mAP50", "mAP70", "mAP75")}


def _coco(metrics: dict) -> dict:
    return {k: _get(metrics, "coco", k) for k in ("AP", "AP50", "AP75")}


def write_summary(work: str | os.PathLike) -> dict:
    """Build the summary and write ``<work>/summary.json`` atomically."""
    s = build_summary(work)
    write_json(Path(work) / "summary.json", s, indent=1)
    return s


def read_summary(work: str | os.PathLike) -> dict:
    p = Path(work) / "summary.json"
    if not p.is_file():
        raise BestieError("no summary yet: run the pipeline first", p)
    return read_json(p)


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def format_summary(s: dict) -> str:
    """The summary as a small text table."""
    pl = s["pseudo_labels"]
    lines = [
        "pseudo labels   " + "  ".join(f"{k}={_fmt(pl.get(k))}" for k in ("num_pseudo", "tp", "num_gt")),
        f"                precision={_fmt(pl.get('precision'))}%  recall={_fmt(pl.get('recall'))}%"
        + (f"  class masks mIoU={_fmt(pl['wsss_miou'])}" if pl.get("wsss_miou") is not None else ""),
    ]
    if isinstance(pl.get("lost"), dict):
        lines.append("GT instances    " + "  ".join(f"{k}={v}" for k, v in pl["lost"].items()))
    rows = [("last.pt", "_last", "final weights"), ("best.pt", "", "chosen on val, scored on val: optimistic")]
    for name, suffix, note in rows:
        voc, coco = s.get("voc" + suffix) or {}, s.get("coco" + suffix) or {}
        if not any(v is not None for v in (*voc.values(), *coco.values())):
            continue
        lines.append(f"{name:8}val     " + "  ".join(f"{k}={_fmt(voc.get(k))}" for k in ("mAP25", "mAP50", "mAP70", "mAP75"))
                     + "  COCO " + "  ".join(f"{k}={_fmt(coco.get(k))}" for k in ("AP", "AP50", "AP75"))
                     + f"   ({note})")
    if s.get("stage_seconds"):
        lines.append("stage seconds   " + "  ".join(f"{k}={v}" for k, v in s["stage_seconds"].items()))
    for kind, path in (s.get("html") or {}).items():
        lines.append(f"HTML report ({kind}): {path}")
    return "\n".join(lines)
