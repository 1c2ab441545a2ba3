"""The label stages: each writes one store (or report, or export) from the dataset and the
stores upstream of it.

- :mod:`.engine`: the per-image loop every store-writing stage runs on (store headers, resume
  from parts, workers, summaries) and :func:`open_input` for upstream stores;
- :mod:`.cues`, :mod:`.wsss`, :mod:`.transfer`: the per-image stages, each a typed job (a frozen
  dataclass of its options and inputs) and a pure per-image function ``(job, record) ->
  (arrays, warnings)``, with its ``run_*`` entry point;
- :mod:`.report`, :mod:`.report_html`, :mod:`.export`: pseudo-label quality, overlays and the HTML
  report; shard merging and export.
"""

from ..algorithms.class_mask import check_class_mask
from .cues import DEFAULT_MIN_CONF, PEAK_KERNEL, PEAK_TOPK, run_cues
from ..store.inputs import CUES, PSEUDO, WSSS, open_input
from .engine import StageSummary, stored_warnings
from .export import EXPORT_FORMATS, merge, run_export
from .report import overlay_sample, run_report
from .report_html import run_report_html
from .transfer import TransferOptions, run_transfer
from .wsss import WSSS_METHODS, run_wsss

__all__ = ["CUES", "DEFAULT_MIN_CONF", "EXPORT_FORMATS", "PEAK_KERNEL", "PEAK_TOPK", "PSEUDO", "StageSummary",
           "TransferOptions", "WSSS", "WSSS_METHODS", "check_class_mask", "merge", "open_input", "overlay_sample",
           "run_cues", "run_export", "run_report", "run_report_html", "run_transfer", "run_wsss", "stored_warnings"]
