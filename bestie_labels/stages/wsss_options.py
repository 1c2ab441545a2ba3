"""The options of ``bestie-labels wsss`` (:class:`WsssOptions`), written once.

Each field's ``metadata`` holds its command-line help (read by :mod:`bestie_cli.options`, which
builds the command's options from it); :meth:`WsssOptions.keywords` gives the keywords of
:func:`~bestie_labels.stages.wsss.run_wsss`. The IRN fields left at None take the defaults the
``train-irn`` checkpoint and :mod:`bestie_labels.irn.wsss` hold (shown in brackets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.option_fields import option
from .wsss import WSSS_METHODS

#: The fields that go to the IRN inference as ``irn=`` (when given).
IRN_FIELDS = ("radius", "beta", "exp_times", "cut_threshold", "peak_split", "cam_scales")


@dataclass(frozen=True)
class WsssOptions:
    """Where the class masks of ``wsss.h5`` come from, and the IRN inference's settings."""

    import_dir: str | None = option(None, "Folder of <id>.png index masks (official WSSS_maps/: 0 background, "
                                          "k = class k-1, 255 ignore).", name="--import", path={})
    method: str | None = option(None, "irn (default with --checkpoint): random walk of CAMs within the "
                                      "boundaries learned by train-irn, touching instances cut apart; cam: the "
                                      "plain CAM baseline from a train-pam classifier.", choices=WSSS_METHODS)
    checkpoint: str | None = option(None, "irn: the checkpoint from train-irn (irn.pt); cam: the classifier from "
                                          "train-pam (pam.pt).", path={})
    bg_threshold: float | None = option(None, "Constant background score in the arg-max [irn: 0.25 (IRN's "
                                              "sem_seg_bg_thres), cam: 0.3].")
    radius: int | None = option(None, "irn: random-walk neighbourhood, stride-4 pixels [5].")
    beta: float | None = option(None, "irn: affinity exponent [10].")
    exp_times: int | None = option(None, "irn: 2^N random-walk steps [8].")
    cut_threshold: float | None = option(None, "irn: boundary probability above which touching parts of a class "
                                               "region are cut apart [0.5; 1 = no cut].")
    peak_split: bool | None = option(None, "irn: cut a class component holding several PAM peaks between them [on].",
                                     flag="--peak-split/--no-peak-split")
    cam_scales: str | None = option(None, "irn: comma-separated factors of the classifier's inference size for "
                                          "the CAMs (IRN: 1,0.5,1.5,2) [1].")
    clean: bool = option(False, "--import: set classes the image-level label does not list to background "
                                "(counted) instead of failing.")
    from_gt: bool = option(False, "Use the ground-truth class masks (upper bound, test oracle).")

    def keywords(self) -> dict[str, Any]:
        """The keywords of :func:`~bestie_labels.stages.wsss.run_wsss` (``irn``: the given IRN
        settings only)."""
        irn = {k: getattr(self, k) for k in IRN_FIELDS if getattr(self, k) is not None}
        return dict(import_dir=self.import_dir, method=self.method, checkpoint=self.checkpoint,
                    bg_threshold=self.bg_threshold, clean=self.clean, from_gt=self.from_gt, irn=irn)
