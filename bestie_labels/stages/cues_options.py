"""The options of ``bestie-labels cues`` (:class:`CuesOptions`), written once.

Each field's ``metadata`` holds its command-line help (read by :mod:`bestie_cli.options`, which
builds the command's options from it); the fields are the keywords of
:func:`~bestie_labels.stages.cues.run_cues`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..core.option_fields import option
from .cues import DEFAULT_MIN_CONF

#: ``--method``: official point files, or the peaks of a classifier's maps (PAM on / off).
CUE_METHODS = tuple(DEFAULT_MIN_CONF)


@dataclass(frozen=True)
class CuesOptions:
    """Where the cues of ``cues.h5`` come from and which are kept."""

    method: str = option("points", "points: read official 'x y cls conf' files; pam / cam: peaks of a "
                                   "classifier's activation maps (cam: PAM disabled at inference).",
                         choices=CUE_METHODS, show_default=True)
    points_dir: str | None = option(None, "Folder of <id>.txt point files (Peak_points/, Center_points/); "
                                          "default: the demo data's points/.", name="--points", path={})
    checkpoint: str | None = option(None, "Classifier checkpoint (from train-pam) for pam / cam.", path={})
    min_conf: float | None = option(None, "Keep cues with conf >= this. Default: 0 for points, 0.7 for pam / "
                                          "cam (the official training threshold on Peak_points).")
    scales: str | None = option(None, "pam / cam: comma-separated factors of the classifier's inference size, "
                                      "maps averaged over them (IRN: 1,0.5,1.5,2) [1].")
    peak_kernel: int | None = option(None, "pam / cam: odd side of the max-pool window of the peak search "
                                           "(peaks at least kernel // 2 + 1 pixels apart) [15, official].", min=1)
    save_maps: bool = option(False, "pam / cam: also store the activation maps (float16).")
    export_txt: str | None = option(None, "Also write the cues as official text files under "
                                          "DIR/Center_points or DIR/Peak_points.", path={})

    def keywords(self) -> dict[str, Any]:
        """The keywords of :func:`~bestie_labels.stages.cues.run_cues`."""
        return asdict(self)
