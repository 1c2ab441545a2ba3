"""``report --html``: the HTML report of the label stages (:mod:`bestie_labels.viz.html`) with
the stores the report reads."""

from __future__ import annotations

from ..core.errors import BestieError
from ..datasets.base import Dataset
from ..store.file import Store
from ..store.inputs import CUES, WSSS
from .report import _find_upstream


def run_report_html(dataset: Dataset, pseudo_path, html_dir, wsss_path=None, cues_path=None,
                    summary: dict | None = None, workers: int = 1, force: bool = False,
                    iou_thr: float = 0.5) -> dict:
    """Write the HTML report of ``pseudo_path`` to ``html_dir``.

    The WSSS and cues stores are ``wsss_path`` / ``cues_path`` or, when not given, the stores
    next to ``pseudo_path`` whose fingerprints it recorded as its inputs (as the overlays);
    ``summary`` is the :func:`~bestie_labels.stages.report.run_report` result (its ``lost``
    field and note are shown).

    Returns ``{"index", "images", "written"}`` (:func:`bestie_labels.viz.html.site.write_site`).
    """
    from ..viz.html.labels_summary import write_labels_report

    if pseudo_path is None:
        raise BestieError("--html needs --pseudo (the report shows the pseudo instances of every image)")
    with Store(pseudo_path) as pseudo:
        wsss_path = wsss_path if wsss_path is not None else _find_upstream(pseudo, "wsss", WSSS)
        cues_path = cues_path if cues_path is not None else _find_upstream(pseudo, "cues", CUES)
    return write_labels_report(dataset, pseudo_path, html_dir, wsss=wsss_path, cues=cues_path, report=summary,
                               workers=workers, force=force, iou_thr=iou_thr)

